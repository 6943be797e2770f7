"""policy.yaml: the typed model (``model``), the key table (``schema``), reading bytes to a validated policy
(``load``, then ``validate``: the reader toolkit ``readers``, the section checks ``service_sections`` and
``access_sections``, the plain value parsers ``parsers``) and the files a policy names (``named_files``)."""

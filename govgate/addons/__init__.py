"""mitmproxy addons: thin glue that turns a flow into facts, calls the core, and applies the result."""

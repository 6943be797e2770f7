"""The gate's own HTML pages: refusals, login, MFA, the Art. 15 warning. Chinese first, English below.

Pages are pure functions returning ``Page``; they use no external assets and no JavaScript, and are
served with a strict Content-Security-Policy (``PAGE_HEADERS``).
"""

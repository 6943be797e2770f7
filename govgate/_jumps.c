/*
 * govgate._jumps: the link scanner's jumps over text and tags that cannot matter, in C.
 *
 * Art. 15 (第十五条): every link leaving for a non-government site is warned. The scanner that finds those links
 * (govgate/core/html_scan.py) jumps over text and tags that cannot hold one inside the regex engine: ``_SKIP`` (text,
 * start tags whose names are not special, end tags other than template/svg/math/select, a "<" that starts no tag) and,
 * in the same-host scan, ``_SAFE_A`` (an <a>/<area> whose first href is a double-quoted value that cannot leave the
 * base's host or names a plainly spelled internal host, ``PlainHosts``). This module does the same jumps, byte by
 * byte, and stops exactly where those patterns stop; the scanner then goes on with the patterns from there.
 *
 * It decides nothing of its own: where it stops, the Python scan reads the tag (tests/outbound/test_native_jumps.py
 * checks, on generated documents, that it stops where the patterns do). Bytes, not characters: in every encoding
 * the scanner reads as bytes, the bytes it tests are never part of a multi-byte character.
 *
 * Each function below names the pattern it follows. "-1" is "the pattern fails here".
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

typedef Py_ssize_t idx;
typedef const unsigned char *bytes_t;

enum {
    WS = 1,         /* [\t\n\f\r ] */
    TAGNAME_END = 2, /* [\t\n\f\r />] */
    ATTRNAME_END = 4, /* [\t\n\f\r />=] */
    UNQUOTED_END = 8, /* [\t\n\f\r >] */
    HOST = 16,      /* [A-Za-z0-9.-] */
    RUN_END = 32,   /* [":/?#\\\t\n\r&] (_SAFE_DQ's plain run) */
    LABEL = 64,     /* [A-Za-z0-9] */
};

static unsigned char cls[256];
static unsigned char lower[256];

static void init_tables(void) {
    for (int c = 0; c < 256; c++) {
        lower[c] = (unsigned char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
        unsigned char k = 0;
        if (c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' ') {
            k |= WS | TAGNAME_END | ATTRNAME_END | UNQUOTED_END;
        }
        if (c == '/') k |= TAGNAME_END | ATTRNAME_END;
        if (c == '>') k |= TAGNAME_END | ATTRNAME_END | UNQUOTED_END;
        if (c == '=') k |= ATTRNAME_END;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) k |= HOST | LABEL;
        if (c == '.' || c == '-') k |= HOST;
        if (c == '"' || c == ':' || c == '/' || c == '?' || c == '#' || c == '\\' || c == '\t' || c == '\n' ||
            c == '\r' || c == '&') {
            k |= RUN_END;
        }
        cls[c] = k;
    }
}

#define IS(c, k) (cls[(unsigned char)(c)] & (k))

static int is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* b[p:p+len(word)] is ``word`` (lower case), ASCII case-insensitively. */
static int at_word(bytes_t b, idx p, idx n, const char *word, idx len) {
    if (n - p < len) return 0;
    for (idx i = 0; i < len; i++) {
        if (lower[b[p + i]] != (unsigned char)word[i]) return 0;
    }
    return 1;
}

static idx find(bytes_t b, idx p, idx n, unsigned char c) {
    if (p >= n) return -1;
    const unsigned char *hit = memchr(b + p, c, (size_t)(n - p));
    return hit == NULL ? -1 : (idx)(hit - b);
}

/* _ATTR from ``p`` (at a byte that is not [\t\n\f\r />]): NAME, then "= value" or no value. End, or -1. */
static idx attr(bytes_t b, idx p, idx n) {
    p++;
    while (p < n && !IS(b[p], ATTRNAME_END)) p++;
    idx q = p;
    while (q < n && IS(b[q], WS)) q++;
    if (q >= n || b[q] != '=') return p; /* (?![\t\n\f\r ]*+=): no value; the spaces are not taken */
    q++;
    while (q < n && IS(b[q], WS)) q++;
    if (q < n && (b[q] == '"' || b[q] == '\'')) {
        idx close = find(b, q + 1, n, b[q]);
        return close < 0 ? -1 : close + 1;
    }
    while (q < n && !IS(b[q], UNQUOTED_END)) q++;
    return q;
}

/* _ANY_END (the rest of a tag: attributes, then ">"). The end past ">", or -1. _RUN_END and _SIMPLE_END, tried first
 * by ``_TAG_ENDS``, end at the same ">" wherever they match (html_scan's comments); this is the grammar they stand
 * for. */
static idx any_end(bytes_t b, idx p, idx n) {
    for (;;) {
        while (p < n && (IS(b[p], WS) || b[p] == '/')) p++;
        if (p >= n) return -1;
        if (b[p] == '>') return p + 1;
        /* An attribute that fails (a quote never closed) ends the attributes; then "[\t\n\f\r /]*+>" cannot match
         * at its name: the tag fails. */
        p = attr(b, p, n);
        if (p < 0) return -1;
    }
}

/* The end of a tag name starting at ``p`` (a letter): [A-Za-z][^\t\n\f\r />]*+ */
static idx name_end(bytes_t b, idx p, idx n) {
    p++;
    while (p < n && !IS(b[p], TAGNAME_END)) p++;
    return p;
}

typedef struct {
    const char *name;
    idx len;
} word;
#define W(s) {s, sizeof(s) - 1}
static const word SPECIAL_START[] = {
    W("a"), W("area"), W("form"), W("button"), W("input"), W("meta"), W("base"), W("script"), W("style"),
    W("textarea"), W("title"), W("xmp"), W("iframe"), W("noembed"), W("noframes"), W("noscript"), W("plaintext"),
    W("template"), W("svg"), W("math"), W("select"), W("isindex"), {NULL, 0},
};
static const word SPECIAL_END[] = {W("template"), W("svg"), W("math"), W("select"), {NULL, 0}};
#undef W

/* b[s:e] is one of ``names``, ASCII case-insensitively. */
static int named(bytes_t b, idx s, idx e, const word *names) {
    idx len = e - s;
    if (len > 9) return 0; /* longer than every special name ("plaintext") */
    unsigned char first = lower[b[s]];
    for (const word *w = names; w->name != NULL; w++) {
        if (w->len == len && (unsigned char)w->name[0] == first && at_word(b, s, e, w->name, len)) return 1;
    }
    return 0;
}

/* _PLAIN_START after "<": a start tag whose name is none of the special ones, whole. */
static idx plain_start(bytes_t b, idx q, idx n) {
    if (q >= n || !is_alpha(b[q])) return -1;
    idx e = name_end(b, q, n);
    if (named(b, q, e, SPECIAL_START)) return -1;
    return any_end(b, e, n);
}

/* _PLAIN_END after "<": "/", an end tag other than template/svg/math/select, whole. */
static idx plain_end(bytes_t b, idx q, idx n) {
    if (q + 1 >= n || b[q] != '/' || !is_alpha(b[q + 1])) return -1;
    idx e = name_end(b, q + 1, n);
    if (named(b, q + 1, e, SPECIAL_END)) return -1;
    return any_end(b, e, n);
}

/* The plainly spelled internal hosts (html_scan.PlainHosts), lower case. */
typedef struct {
    PyObject_HEAD
    PyObject *exact;    /* tuple of bytes */
    PyObject *suffixes; /* tuple of bytes */
    PyObject *wild;     /* tuple of bytes: "*.example.cn" is "example.cn" here */
} Jumps;

/* _LABEL: (?![Xx][Nn]--)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])? over all of h[s:e]. */
static int label(bytes_t h, idx s, idx e) {
    idx len = e - s;
    if (len < 1 || len > 63 || !IS(h[s], LABEL) || !IS(h[e - 1], LABEL)) return 0;
    for (idx i = s + 1; i < e - 1; i++) {
        if (!IS(h[i], LABEL) && h[i] != '-') return 0;
    }
    return !(len >= 4 && lower[h[s]] == 'x' && lower[h[s + 1]] == 'n' && h[s + 2] == '-' && h[s + 3] == '-');
}

/* h[0:x] is "(?:LABEL\.){min,max}". */
static int labels(bytes_t h, idx x, int min, int max) {
    int count = 0;
    idx s = 0;
    while (s < x) {
        idx dot = s;
        while (dot < x && h[dot] != '.') dot++;
        if (dot >= x || !label(h, s, dot)) return 0; /* each label is followed by its dot */
        count++;
        s = dot + 1;
    }
    return count >= min && count <= max;
}

static int ends_with(bytes_t h, idx len, PyObject *lit) {
    idx k = PyBytes_GET_SIZE(lit);
    if (k > len) return 0;
    bytes_t l = (bytes_t)PyBytes_AS_STRING(lit);
    for (idx i = 0; i < k; i++) {
        if (lower[h[len - k + i]] != l[i]) return 0;
    }
    return 1;
}

/* The whole host run h[0:len] ([A-Za-z0-9.-]+) matches ``PlainHosts.pattern()``: an exact host; labels{0,16} then a
 * suffix; labels{1,17} then a wildcard's name. (The pattern can only match the whole run: what follows the host in
 * ``_SAFE_DQ``'s internal alternative is never a host byte.) */
static int plain_internal(Jumps *self, bytes_t h, idx len) {
    Py_ssize_t i;
    for (i = 0; i < PyTuple_GET_SIZE(self->exact); i++) {
        PyObject *lit = PyTuple_GET_ITEM(self->exact, i);
        if (PyBytes_GET_SIZE(lit) == len && ends_with(h, len, lit)) return 1;
    }
    for (i = 0; i < PyTuple_GET_SIZE(self->suffixes); i++) {
        PyObject *lit = PyTuple_GET_ITEM(self->suffixes, i);
        if (ends_with(h, len, lit) && labels(h, len - PyBytes_GET_SIZE(lit), 0, 16)) return 1;
    }
    for (i = 0; i < PyTuple_GET_SIZE(self->wild); i++) {
        PyObject *lit = PyTuple_GET_ITEM(self->wild, i);
        if (ends_with(h, len, lit) && labels(h, len - PyBytes_GET_SIZE(lit), 1, 17)) return 1;
    }
    return 0;
}

/* _SAFE_DQ's internal alternative (``scanners_for``) from ``p``: "http(s)://" or "//", an internal host, an optional
 * port, then "[/?#][^"]*+" or "[\x00-\x20]*+(?=")". The position of the closing quote, or -1. */
static idx internal(Jumps *self, bytes_t b, idx p, idx n) {
    if (at_word(b, p, n, "http", 4)) {
        p += 4;
        if (p < n && lower[b[p]] == 's') p++;
        if (!at_word(b, p, n, "://", 3)) return -1;
        p += 3;
    } else if (at_word(b, p, n, "//", 2)) {
        p += 2;
    } else {
        return -1;
    }
    idx h = p;
    while (p < n && IS(b[p], HOST)) p++;
    if (p == h || !plain_internal(self, b + h, p - h)) return -1;
    if (p < n && b[p] == ':') {
        p++;
        while (p < n && b[p] >= '0' && b[p] <= '9') p++;
    }
    if (p < n && (b[p] == '/' || b[p] == '?' || b[p] == '#')) return find(b, p + 1, n, '"');
    while (p < n && b[p] <= 0x20) p++;
    return p < n && b[p] == '"' ? p : -1;
}

/* _SAFE_DQ then the closing quote, from just past the opening one. The position of the closing quote, or -1. */
static idx safe_dq(Jumps *self, bytes_t b, idx p, idx n) {
    while (p < n && b[p] <= 0x20) p++;
    if (p >= n) return -1;
    idx r = internal(self, b, p, n);
    if (r >= 0) return r;
    unsigned char c = b[p];
    if (c == '"') return p;
    if (c == '?' || c == '#') return find(b, p + 1, n, '"');
    if (c == '/') {
        if (p + 1 < n) {
            unsigned char d = b[p + 1];
            if (d == '/' || d == '\\' || d == '\t' || d == '\n' || d == '\r' || d == '&') return -1;
        }
        return find(b, p + 1, n, '"');
    }
    if (IS(c, RUN_END)) return -1;
    p++;
    while (p < n && !IS(b[p], RUN_END)) p++;
    if (p < n && (b[p] == '/' || b[p] == '?' || b[p] == '#')) return find(b, p + 1, n, '"');
    return p < n && b[p] == '"' ? p : -1;
}

/* At an attribute named "href" followed by [\t\n\f\r /=>]: (?i:href)[\t\n\f\r />=] */
static int at_href(bytes_t b, idx p, idx n) {
    return at_word(b, p, n, "href", 4) && p + 4 < n && (IS(b[p + 4], TAGNAME_END) || b[p + 4] == '=');
}

/* _SAFE_A after "<": an <a>/<area> whose first href is a safe double-quoted value, whole. */
static idx safe_a(Jumps *self, bytes_t b, idx q, idx n) {
    if (q >= n || lower[b[q]] != 'a') return -1;
    idx p = q + 1;
    if (at_word(b, p, n, "rea", 3)) p += 3;
    if (p >= n) return -1;
    idx r = p;
    while (r < n && IS(b[r], WS)) r++;
    if (r > p && at_word(b, r, n, "href", 4) && r + 4 < n && (IS(b[r + 4], WS) || b[r + 4] == '=')) {
        p = r; /* href first: [\t\n\f\r ]++(?=href[\t\n\f\r =]) */
    } else if (IS(b[p], TAGNAME_END)) {
        /* (?:[\t\n\f\r /]*+(?!href[\t\n\f\r />=])_ATTR)*+[\t\n\f\r /]*+ */
        for (;;) {
            while (p < n && (IS(b[p], WS) || b[p] == '/')) p++;
            if (p >= n || b[p] == '>' || at_href(b, p, n)) break;
            p = attr(b, p, n);
            if (p < 0) return -1; /* then "[\t\n\f\r /]*+href" cannot match at that attribute's name */
        }
    } else {
        return -1;
    }
    if (!at_word(b, p, n, "href", 4)) return -1;
    p += 4;
    while (p < n && IS(b[p], WS)) p++;
    if (p >= n || b[p] != '=') return -1;
    p++;
    while (p < n && IS(b[p], WS)) p++;
    if (p >= n || b[p] != '"') return -1;
    p = safe_dq(self, b, p + 1, n);
    if (p < 0) return -1;
    return any_end(b, p + 1, n);
}

/* _SKIP (with ``_SAFE_A`` first when ``same_host``) from ``p``: its end. */
static idx skip(Jumps *self, bytes_t b, idx p, idx n, int same_host) {
    for (;;) {
        idx lt = find(b, p, n, '<');
        if (lt < 0) return n;
        idx q = lt + 1, r = -1;
        if (same_host) r = safe_a(self, b, q, n);
        if (r < 0 && q < n && b[q] == '/') r = plain_end(b, q, n);
        if (r < 0) r = plain_start(b, q, n);
        if (r < 0) {
            /* "<" that starts nothing: (?![A-Za-z!/?]) */
            if (q < n && (is_alpha(b[q]) || b[q] == '!' || b[q] == '/' || b[q] == '?')) return lt;
            r = q;
        }
        p = r;
    }
}

/* (buf: bytes, pos: int, stop: int), with pos and stop clamped to the buffer as ``re`` clamps them. ``*given`` is
 * stop as given. 0, or -1 with an exception set. */
static int span_args(PyObject *const *args, Py_ssize_t nargs, bytes_t *b, idx *pos, idx *stop, idx *given) {
    if (nargs != 3 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "expected (buf: bytes, pos: int, stop: int)");
        return -1;
    }
    *pos = PyLong_AsSsize_t(args[1]);
    if (*pos == -1 && PyErr_Occurred()) return -1;
    *stop = PyLong_AsSsize_t(args[2]);
    if (*stop == -1 && PyErr_Occurred()) return -1;
    *given = *stop;
    idx len = PyBytes_GET_SIZE(args[0]);
    *b = (bytes_t)PyBytes_AS_STRING(args[0]);
    *pos = *pos < 0 ? 0 : (*pos > len ? len : *pos);
    *stop = *stop < 0 ? 0 : (*stop > len ? len : *stop);
    return 0;
}

/* ``span_args`` for a match at ``pos``: ``re`` finds none past ``stop``, and the scan never asks for one. */
static int match_args(PyObject *const *args, Py_ssize_t nargs, bytes_t *b, idx *pos, idx *stop) {
    idx given;
    if (span_args(args, nargs, b, pos, stop, &given) < 0) return -1;
    if (*pos > *stop) {
        PyErr_SetString(PyExc_ValueError, "pos is past stop");
        return -1;
    }
    return 0;
}

/* The <a>/<area> the patterns take after their jumps, after "<": (?P<a><(?i:a|area)(?=[\t\n\f\r />]) _A_TAG), where
 * _A_TAG is ``_first_attr_src(b"href", _TAG_ENDS, safe=True)``: attributes up to the first href, its value (group v,
 * quotes and all), the rest of the tag. The end past ">", or -1. ``*vs``/``*ve``: the value's span, -1 for none;
 * ``*safe``: with ``want_safe``, whether it is double-quoted and ``_SAFE_DQ`` (group s; the same-host scanner's
 * pattern never sets it). */
static idx a_tag(Jumps *self, bytes_t b, idx q, idx n, int want_safe, idx *vs, idx *ve, int *safe) {
    *vs = *ve = -1;
    *safe = 0;
    if (q >= n || lower[b[q]] != 'a') return -1;
    idx p = q + 1;
    if (at_word(b, p, n, "rea", 3) && p + 3 < n && IS(b[p + 3], TAGNAME_END)) p += 3;
    if (p >= n || !IS(b[p], TAGNAME_END)) return -1;
    /* (?:[\t\n\f\r /]*+(?!href[\t\n\f\r />=])_ATTR)*+[\t\n\f\r /]*+ */
    for (;;) {
        idx r = p;
        while (r < n && (IS(b[r], WS) || b[r] == '/')) r++;
        if (r >= n || b[r] == '>' || at_href(b, r, n)) break;
        idx a = attr(b, r, n);
        if (a < 0) break;
        p = a;
    }
    while (p < n && (IS(b[p], WS) || b[p] == '/')) p++;
    /* (?:(?P<n>href)(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(?P<v>value)|(?![\t\n\f\r ]*+=)))?+ */
    if (at_word(b, p, n, "href", 4)) {
        idx r = p + 4;
        while (r < n && IS(b[r], WS)) r++;
        if (r >= n || b[r] != '=') {
            p += 4; /* a name with no value */
        } else {
            r++;
            while (r < n && IS(b[r], WS)) r++;
            if (r < n && (b[r] == '"' || b[r] == '\'')) {
                idx close = find(b, r + 1, n, b[r]);
                if (close >= 0) { /* else the group takes nothing */
                    *vs = r;
                    *ve = close + 1;
                    *safe = want_safe && b[r] == '"' && safe_dq(self, b, r + 1, n) == close;
                    p = close + 1;
                }
            } else {
                idx e = r;
                while (e < n && !IS(b[e], UNQUOTED_END)) e++;
                *vs = r;
                *ve = e;
                p = e;
            }
        }
    }
    idx end = any_end(b, p, n);
    if (end < 0) *vs = *ve = -1;
    return end;
}

/* One step of the scan's hot loop: the jumps, then the <a>/<area> the patterns take there. (end, value start, value
 * end, safe): the value's span without its quotes; start -1 for an <a> with no href value, -2 for none (stopped before
 * what needs a closer look, or at ``stop``). */
static PyObject *jumps_link(Jumps *self, PyObject *const *args, Py_ssize_t nargs, int same_host) {
    bytes_t b;
    idx pos, stop;
    if (match_args(args, nargs, &b, &pos, &stop) < 0) return NULL;
    idx at = pos >= stop ? pos : skip(self, b, pos, stop, same_host);
    idx vs = -2, ve = 0;
    int safe = 0;
    if (at < stop) {
        idx end = a_tag(self, b, at + 1, stop, !same_host, &vs, &ve, &safe);
        if (end >= 0) {
            at = end;
            if (vs >= 0 && ve > vs && (b[vs] == '"' || b[vs] == '\'')) {
                vs++;
                ve--;
            }
        } else {
            vs = -2;
            ve = 0;
            safe = 0;
        }
    }
    return Py_BuildValue("(nnnO)", at, vs, ve, safe ? Py_True : Py_False);
}

static PyObject *jumps_plain_link(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return jumps_link((Jumps *)self, args, nargs, 0);
}

static PyObject *jumps_same_host_link(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return jumps_link((Jumps *)self, args, nargs, 1);
}

static PyObject *jumps_call(Jumps *self, PyObject *const *args, Py_ssize_t nargs, int same_host) {
    bytes_t b;
    idx pos, stop;
    if (match_args(args, nargs, &b, &pos, &stop) < 0) return NULL;
    return PyLong_FromSsize_t(pos >= stop ? pos : skip(self, b, pos, stop, same_host));
}

static PyObject *jumps_plain(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return jumps_call((Jumps *)self, args, nargs, 0);
}

static PyObject *jumps_same_host(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return jumps_call((Jumps *)self, args, nargs, 1);
}

static int lower_bytes_tuple(PyObject *t, const char *what) {
    if (!PyTuple_Check(t)) {
        PyErr_Format(PyExc_TypeError, "%s must be a tuple of bytes", what);
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(t); i++) {
        PyObject *item = PyTuple_GET_ITEM(t, i);
        if (!PyBytes_Check(item)) {
            PyErr_Format(PyExc_TypeError, "%s must be a tuple of bytes", what);
            return -1;
        }
        const char *s = PyBytes_AS_STRING(item);
        if (PyBytes_GET_SIZE(item) == 0) {
            PyErr_Format(PyExc_ValueError, "%s must not hold an empty name", what);
            return -1;
        }
        for (Py_ssize_t j = 0; j < PyBytes_GET_SIZE(item); j++) {
            unsigned char c = (unsigned char)s[j];
            /* [a-z0-9.-]: the names the pattern may hold (``HostClassifier.plain_internal_hosts``) */
            if (!IS(c, HOST) || lower[c] != c) {
                PyErr_Format(PyExc_ValueError, "%s must be lower case host names ([a-z0-9.-])", what);
                return -1;
            }
        }
    }
    return 0;
}

static PyObject *jumps_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"exact", "suffixes", "wild", NULL};
    PyObject *exact, *suffixes, *wild;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO", kwlist, &exact, &suffixes, &wild)) return NULL;
    if (lower_bytes_tuple(exact, "exact") < 0 || lower_bytes_tuple(suffixes, "suffixes") < 0 ||
        lower_bytes_tuple(wild, "wild") < 0) {
        return NULL;
    }
    Jumps *self = (Jumps *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    Py_INCREF(exact);
    Py_INCREF(suffixes);
    Py_INCREF(wild);
    self->exact = exact;
    self->suffixes = suffixes;
    self->wild = wild;
    return (PyObject *)self;
}

static void jumps_dealloc(Jumps *self) {
    Py_XDECREF(self->exact);
    Py_XDECREF(self->suffixes);
    Py_XDECREF(self->wild);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* _TABLE_OR_SELECT.search(buf, pos, stop).start(): "<table" or "<select" (any case) then [\t\n\f\r />], or -1. */
static PyObject *table_or_select(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    bytes_t b;
    idx p, n, given;
    if (span_args(args, nargs, &b, &p, &n, &given) < 0) return NULL;
    for (;;) {
        idx lt = find(b, p, n, '<');
        if (lt < 0) return PyLong_FromSsize_t(-1);
        idx e = -1;
        if (at_word(b, lt + 1, n, "table", 5)) e = lt + 6;
        else if (at_word(b, lt + 1, n, "select", 6)) e = lt + 7;
        if (e >= 0 && e < n && IS(b[e], TAGNAME_END)) return PyLong_FromSsize_t(lt);
        p = lt + 1;
    }
}

/* "</script" then [\t\n\f\r />] at ``p`` (``close``), or "<script" then the same. */
static int script_tag(bytes_t b, idx p, idx n, int close) {
    idx q = p + 1 + (close ? 1 : 0);
    if (p >= n || b[p] != '<' || (close && (p + 1 >= n || b[p + 1] != '/'))) return 0;
    return at_word(b, q, n, "script", 6) && q + 6 < n && IS(b[q + 6], TAGNAME_END);
}

enum { FOUND_NONE, FOUND_CLOSE, FOUND_OPEN, FOUND_COMMENT_START, FOUND_COMMENT_END };

/* The leftmost of the tokens ``want`` names from ``p``: _SCRIPT_DATA ("</script", "<!--"), _SCRIPT_ESCAPED ("-->",
 * "</script", "<script"), _SCRIPT_DOUBLE ("-->", "</script"). Its kind; ``*at`` its start. */
static int script_token(bytes_t b, idx p, idx n, int comment_start, int dashes, int open, idx *at) {
    for (; p < n; p++) {
        unsigned char c = b[p];
        if (c == '<') {
            if (script_tag(b, p, n, 1)) { *at = p; return FOUND_CLOSE; }
            if (open && script_tag(b, p, n, 0)) { *at = p; return FOUND_OPEN; }
            if (comment_start && at_word(b, p, n, "<!--", 4)) { *at = p; return FOUND_COMMENT_START; }
        } else if (c == '-' && dashes && at_word(b, p, n, "-->", 3)) {
            *at = p;
            return FOUND_COMMENT_END;
        }
    }
    return FOUND_NONE;
}

/* html_scan._script_end: where script data ends, the "</script" that closes it (HTML 13.2.5.4 ff., the escape
 * states), or ``stop``. */
static PyObject *script_end(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    bytes_t b;
    idx p, n, given;
    if (span_args(args, nargs, &b, &p, &n, &given) < 0) return NULL;
    idx at = 0;
    for (;;) {
        int kind = script_token(b, p, n, 1, 0, 0, &at); /* _SCRIPT_DATA */
        if (kind == FOUND_NONE) return PyLong_FromSsize_t(given);
        if (kind == FOUND_CLOSE) return PyLong_FromSsize_t(at);
        p = at + 2; /* escaped dash-dash state: "<!-->" closes at once */
        for (;;) {
            kind = script_token(b, p, n, 0, 1, 1, &at); /* _SCRIPT_ESCAPED */
            if (kind == FOUND_NONE) return PyLong_FromSsize_t(given);
            if (kind == FOUND_COMMENT_END) {
                p = at + 3;
                break;
            }
            if (kind == FOUND_CLOSE) return PyLong_FromSsize_t(at);
            /* double-escaped: "</script>" is text; _SCRIPT_DOUBLE from the end of "<script" and its next byte */
            kind = script_token(b, at + 8, n, 0, 1, 0, &at);
            if (kind == FOUND_NONE) return PyLong_FromSsize_t(given);
            if (kind == FOUND_COMMENT_END) {
                p = at + 3;
                break;
            }
            p = at + 9; /* past "</script" and its next byte */
        }
    }
}

static PyMethodDef module_methods[] = {
    {"table_or_select", (PyCFunction)(void (*)(void))table_or_select, METH_FASTCALL,
     "table_or_select(buf, pos, stop) -> int: where html_scan._TABLE_OR_SELECT.search(buf, pos, stop) starts, or -1."},
    {"script_end", (PyCFunction)(void (*)(void))script_end, METH_FASTCALL,
     "script_end(buf, pos, stop) -> int: html_scan._script_end(buf, pos, stop)."},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef jumps_methods[] = {
    {"plain", (PyCFunction)(void (*)(void))jumps_plain, METH_FASTCALL,
     "plain(buf, pos, stop) -> int: where html_scan._SKIP.match(buf, pos, stop) ends."},
    {"same_host", (PyCFunction)(void (*)(void))jumps_same_host, METH_FASTCALL,
     "same_host(buf, pos, stop) -> int: where the same-host scanner's jumps (_SKIP with _SAFE_A) end."},
    {"plain_link", (PyCFunction)(void (*)(void))jumps_plain_link, METH_FASTCALL,
     "plain_link(buf, pos, stop) -> (end, value start, value end, safe): html_scan._FAST's match, as scan_html reads it."},
    {"same_host_link", (PyCFunction)(void (*)(void))jumps_same_host_link, METH_FASTCALL,
     "same_host_link(buf, pos, stop) -> (end, value start, value end, safe): the same-host scanner's match."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject JumpsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "govgate._jumps.Jumps",
    .tp_basicsize = sizeof(Jumps),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Jumps(exact, suffixes, wild): the scanner's jumps, with these plainly spelled internal hosts.",
    .tp_new = jumps_new,
    .tp_dealloc = (destructor)jumps_dealloc,
    .tp_methods = jumps_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "govgate._jumps",
    .m_doc = "The link scanner's jumps in C (govgate.core.html_scan).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__jumps(void) {
    init_tables();
    if (PyType_Ready(&JumpsType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&JumpsType);
    if (PyModule_AddObject(m, "Jumps", (PyObject *)&JumpsType) < 0) {
        Py_DECREF(&JumpsType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

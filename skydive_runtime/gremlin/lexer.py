"""Tokens of the Gremlin dialect (upstream graffiti/graph/traversal/traversal_scanner.go).

- identifiers: an ASCII letter then letters, digits or '_' (keywords are matched case-insensitively
  by the parser, the lexer keeps the literal);
- strings: from ' or " to the next ' OR " (no escapes);
- numbers: a digit then digits or '.'; a letter right after a number is illegal (`5s`);
- punctuation: ( ) , .
- whitespace: space, tab, newline (and carriage return).
Anything else is an ILLEGAL token; the parser reports it with its position.
"""

IDENT = "IDENT"
STRING = "STRING"
NUMBER = "NUMBER"
LPAREN = "("
RPAREN = ")"
COMMA = ","
DOT = "."
EOF = "EOF"
ILLEGAL = "ILLEGAL"

_PUNCT = {"(": LPAREN, ")": RPAREN, ",": COMMA, ".": DOT}
_WS = " \t\n\r"


class Token:
    __slots__ = ("kind", "text", "pos", "error")

    def __init__(self, kind, text, pos, error=None):
        self.kind = kind
        self.text = text
        self.pos = pos
        self.error = error

    def describe(self):
        if self.kind == EOF:
            return "end of query"
        if self.kind == STRING:
            return "string %s" % _quote(self.text)
        return _quote(self.text)

    def __repr__(self):
        return "Token(%s, %r, %d)" % (self.kind, self.text, self.pos)


def _quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _is_letter(c):
    return ("a" <= c <= "z") or ("A" <= c <= "Z")


def _is_digit(c):
    return "0" <= c <= "9"


def tokenize(text):
    """The list of tokens of text, ending with EOF. Never raises."""
    toks = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _WS:
            i += 1
            continue
        if _is_digit(c):
            j = i + 1
            while j < n and (_is_digit(text[j]) or text[j] == "."):
                j += 1
            if j < n and _is_letter(text[j]):
                toks.append(Token(ILLEGAL, text[i:j + 1], i,
                                  "unexpected letter %s after number at position %d" % (_quote(text[j]), j)))
                i = j + 1
                continue
            toks.append(Token(NUMBER, text[i:j], i))
            i = j
            continue
        if c == "'" or c == '"':
            j = i + 1
            while j < n and text[j] != "'" and text[j] != '"':
                j += 1
            if j >= n:
                toks.append(Token(ILLEGAL, text[i:], i,
                                  "unterminated string starting at position %d" % i))
                i = n
                continue
            toks.append(Token(STRING, text[i + 1:j], i))
            i = j + 1
            continue
        if _is_letter(c):
            j = i + 1
            while j < n and (_is_letter(text[j]) or _is_digit(text[j]) or text[j] == "_"):
                j += 1
            toks.append(Token(IDENT, text[i:j], i))
            i = j
            continue
        kind = _PUNCT.get(c)
        if kind is not None:
            toks.append(Token(kind, c, i))
        else:
            toks.append(Token(ILLEGAL, c, i, "illegal character %s at position %d" % (_quote(c), i)))
        i += 1
    toks.append(Token(EOF, "", n))
    return toks

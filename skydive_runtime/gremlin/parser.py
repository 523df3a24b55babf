"""Parser of the Gremlin dialect: `G` then `.Step(args)` repeats (upstream traversal_parser.go).

Keywords are case-insensitive. Arguments are separated by commas (like upstream, a missing or
doubled comma is tolerated). Errors are GremlinError with the 0-based position of the offending
token.
"""

from . import lexer as L
from .errors import GremlinError
from .params import (ASC, DESC, FOREVER, NOW, build_predicate, metadata_from_params)

MAX_NESTING = 16
MAX_QUERY_LENGTH = 1 << 20

_PREDICATES = {"NE", "NEE", "LT", "GT", "LTE", "GTE", "INSIDE", "BETWEEN", "WITHIN", "WITHOUT",
               "REGEX", "IPV4RANGE"}
_CONSTANTS = {"ASC": ASC, "DESC": DESC, "NOW": NOW, "FOREVER": FOREVER, "TRUE": True, "FALSE": False}

MAX_INT64 = (1 << 63) - 1


def parse_number(tok):
    lit = tok.text
    if "." not in lit and len(lit) <= 19:
        v = int(lit)
        if v <= MAX_INT64:
            return v
    try:
        return float(lit)
    except ValueError:
        raise GremlinError("Expected number token at position %d, got: %s" % (tok.pos, lit), tok.pos) from None


class Parser:
    def __init__(self, text, registry):
        self.text = text
        self.registry = registry
        self.toks = L.tokenize(text)
        self.i = 0

    def next(self):
        tok = self.toks[self.i]
        if tok.kind == L.ILLEGAL:
            raise GremlinError(tok.error[0].upper() + tok.error[1:], tok.pos)
        if tok.kind != L.EOF:
            self.i += 1
        return tok

    def peek(self):
        return self.toks[self.i]

    def parse(self):
        from .steps import GStep
        tok = self.next()
        if tok.kind != L.IDENT or tok.text.upper() != "G":
            raise GremlinError("found %s at position %d, expected `G`" % (_q(tok), tok.pos), tok.pos)
        steps = []
        while True:
            tok = self.next()
            if tok.kind == L.EOF:
                break
            if tok.kind != L.DOT:
                raise GremlinError("found %s at position %d, expected `.`" % (_q(tok), tok.pos), tok.pos)
            steps.append(self.parse_step())
        return [GStep("G", [], 0)] + steps

    def parse_step(self):
        from .steps import build_step
        tok = self.next()
        if tok.kind != L.IDENT:
            if tok.kind == L.EOF:
                raise GremlinError("Expected step function at position %d, got end of query" % tok.pos, tok.pos)
            raise GremlinError("Expected step function at position %d, got: %s" % (tok.pos, tok.text), tok.pos)
        upper = tok.text.upper()
        if upper == "G":
            from .steps import GStep
            return GStep("G", [], tok.pos)
        factory = build_step(upper, self.registry)
        if factory is None:
            raise GremlinError("Expected step function, got: %s (position %d)" % (tok.text, tok.pos), tok.pos)
        params = self.parse_params(0)
        try:
            return factory(params, tok.pos)
        except GremlinError as exc:
            if exc.position is None:
                exc.position = tok.pos
            raise

    def parse_params(self, depth):
        if depth > MAX_NESTING:
            tok = self.peek()
            raise GremlinError("Arguments nested too deeply at position %d" % tok.pos, tok.pos)
        tok = self.next()
        if tok.kind != L.LPAREN:
            got = "end of query" if tok.kind == L.EOF else tok.text
            raise GremlinError("Expected left parenthesis at position %d, got: %s" % (tok.pos, got), tok.pos)
        params = []
        while True:
            tok = self.next()
            kind = tok.kind
            if kind == L.RPAREN:
                return params
            if kind == L.EOF:
                raise GremlinError("Expected right parenthesis at position %d" % tok.pos, tok.pos)
            if kind == L.COMMA:
                continue
            if kind == L.NUMBER:
                params.append(parse_number(tok))
            elif kind == L.STRING:
                params.append(tok.text)
            elif kind == L.IDENT:
                upper = tok.text.upper()
                if upper in _CONSTANTS:
                    params.append(_CONSTANTS[upper])
                elif upper == "METADATA":
                    sub = self.parse_params(depth + 1)
                    try:
                        params.append(metadata_from_params(sub))
                    except GremlinError as exc:
                        exc.position = tok.pos
                        raise
                elif upper in _PREDICATES:
                    sub = self.parse_params(depth + 1)
                    try:
                        params.append(build_predicate(upper, sub))
                    except GremlinError as exc:
                        exc.position = tok.pos
                        exc.message = "%s (position %d)" % (exc.message, tok.pos)
                        exc.args = (exc.message,)
                        raise
                else:
                    raise GremlinError("Unexpected token while parsing parameters at position %d, got: %s"
                                       % (tok.pos, tok.text), tok.pos)
            else:
                raise GremlinError("Unexpected token while parsing parameters at position %d, got: %s"
                                   % (tok.pos, tok.text), tok.pos)


def _q(tok):
    if tok.kind == L.EOF:
        return '""'
    return '"%s"' % tok.text


def parse_steps(text, registry):
    if not isinstance(text, str):
        raise GremlinError("query must be a string")
    if len(text) > MAX_QUERY_LENGTH:
        raise GremlinError("query too long (%d characters, at most %d)" % (len(text), MAX_QUERY_LENGTH))
    return Parser(text, registry).parse()

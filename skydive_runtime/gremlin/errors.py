"""The one exception the Gremlin layer raises (the API answers it with HTTP 400)."""


class GremlinError(ValueError):
    """A query that cannot be parsed or executed. `position` is a 0-based character offset or None."""

    def __init__(self, message, position=None):
        ValueError.__init__(self, message)
        self.message = message
        self.position = position

    def __str__(self):
        return self.message

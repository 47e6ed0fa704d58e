"""Exception types shared by the facades."""


class ParameterTypeError(TypeError, ValueError):
    """A parameter of the wrong kind (e.g. a float kernel size).

    It is a TypeError, as Python reports wrong argument types, and a ValueError, as cypool
    raises for every bad parameter; ``except`` clauses for either catch it.
    """

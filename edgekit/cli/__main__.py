"""``python -m edgekit.cli``: the same as the ``edgekit`` console script."""

from . import main

if __name__ == "__main__":
    main()

"""`python -m plugins.primitives`: see plugins/primitives/cli.py."""

from .cli import main

if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter

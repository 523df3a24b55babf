"""Offline stand-in for the get-pip.py bootstrap script ansible-test downloads.

ansible-test bootstraps pip into each of its sanity/units virtual environments by running
``get-pip-<version>.py`` fetched from ci-files.testing.ansible.com, a host this machine cannot
reach. When a file named ``~/.ansible/test/cache/get_pip_<version>.py`` exists, ansible-test runs
it instead (through ``GET_PIP``), passing get-pip's usual arguments, e.g.
``--disable-pip-version-check pip==24.2 --no-setuptools --no-wheel``.

This stand-in puts the interpreter's bundled pip in place with ``ensurepip`` and then asks that
pip to install the requested packages (normally the pinned pip itself), from PyPI or from
whatever index/cache pip is configured with. get-pip's ``--no-setuptools``/``--no-wheel``
switches have no pip equivalent and are dropped.
"""

import subprocess
import sys

GET_PIP_ONLY_FLAGS = ("--no-setuptools", "--no-wheel")


def main():
    args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY_FLAGS]
    subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True,
                   stdout=subprocess.DEVNULL)
    if args:
        subprocess.run([sys.executable, "-m", "pip", "install"] + args, check=True)


if __name__ == "__main__":
    main()

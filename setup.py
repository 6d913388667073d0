"""Packaging beyond pyproject.toml: the wheel carries assets/ and indexes/ as memdemo._data (memdemo/paths.py)."""

from setuptools import find_packages, setup

DATA = {
    "memdemo._data.assets": "assets",
    "memdemo._data.assets.emojimem": "assets/emojimem",
    "memdemo._data.indexes": "indexes",
}

setup(packages=[*find_packages(include=["memdemo*"]), *DATA], package_dir=DATA)

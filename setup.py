"""The package list for pyproject.toml's `package-dir` mapping: every package below compiler/ and
sidecar/, under the `astra_sidecar` import root."""

from setuptools import find_packages, setup

SUBTREES = ("compiler", "sidecar")
packages = ["astra_sidecar", "astra_sidecar.schema"]
for tree in SUBTREES:
    packages += [f"astra_sidecar.{name}" for name in find_packages(include=[tree, f"{tree}.*"])]

setup(packages=packages)

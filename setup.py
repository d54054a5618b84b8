"""Ships the top-level templates/ folder inside the wheel as the package data `gradc/templates`."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["gradc", "gradc.*"]) + ["gradc.templates"],
    package_dir={"gradc.templates": "templates"},
    package_data={"gradc.templates": ["**/*.j2"]},
)

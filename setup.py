"""Installs maml_tf: `pip install -e .[test]` for the tests as well."""

from setuptools import find_packages, setup

setup(
    name="maml_tf",
    version="0.1.0",
    description="MAML, first-order MAML and Reptile for TensorFlow 2 / Keras 3 models",
    packages=find_packages(include=["maml_tf", "maml_tf.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.0",
        "tensorflow-datasets>=4.9",
        "tensorboard>=2.16",  # tf.summary needs it; recent tensorflow wheels no longer pull it in
        "absl-py>=1.0",
        "importlib_resources",  # tfds needs it to load/build datasets (--data_source=tfds)
        "numpy",
        "pillow",  # reads the Omniglot / miniImageNet images
        "matplotlib",  # the plots in results/
    ],
    extras_require={"test": ["pytest>=7", "pytest-xdist>=3"]},
    entry_points={"console_scripts": ["maml_tf=maml_tf.main:run"]},
)

"""The suite's generator scripts (``create_testdata/net.py``, needing PyTorch) are data
here, not tests: keep pytest's ``--doctest-modules`` from importing them."""

collect_ignore_glob = ["ml_model_import/*/create_testdata/*.py"]

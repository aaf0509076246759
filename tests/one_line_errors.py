"""Shared by the CLI error tests: each bad input fails in one line, and transformers' logger is quiet as
`dlrl-jax` itself runs it."""

import pytest

from dlrl_jax import cli


@pytest.fixture(scope="module", autouse=True)
def quiet_transformers():
    """As `dlrl-jax` itself runs (TRANSFORMERS_VERBOSITY=error unless set): a session's earlier tests may
    have configured transformers' logger before cli.main sets that default."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    yield
    hf_logging.set_verbosity(level)


def fails_in_one_line(capsys, argv, status=2):
    """Runs `dlrl-jax argv`; the exit status is `status` and stderr one error line without a traceback."""
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == status, err
    assert err.count("\n") == 1 and err.startswith(f"dlrl-jax {argv[0]}: error: ") and "Traceback" not in err, err
    return err

"""Evaluation protocols: each paper's accuracy parser, ported as its code computes it (`parsers`:
`score(protocol, task, text, record) -> (correct, total)`, `score_many` for a batch: code runs its programs
in one sandbox batch), EGSPO's HumanEval/MBPP pass@1 (`egspo_code`), d1 generation-file entries as
records (`records`), and `dlrl-jax rescore` over generation files (`rescore`)."""

from dlrl_jax.protocols.parsers import PROTOCOLS, SUPPORTED, TASKS, ProtocolError, check, score, score_many
from dlrl_jax.protocols.records import record_from_d1_entry

__all__ = ["PROTOCOLS", "SUPPORTED", "TASKS", "ProtocolError", "check", "record_from_d1_entry", "score", "score_many"]

"""Inputs longer than the model takes: said out loud, never cut silently.

An endpoint that says its ``max_input_length`` in ``GET /info`` (TEI) truncates longer inputs
when asked to (``truncate=True``, hfrag's default) and refuses them otherwise. Either way the
caller should know. :func:`check_lengths` counts, before the embedding requests, the tokens of
every text that could be too long, with the endpoint's own tokenizer (``POST /tokenize``,
batched; texts whose UTF-8 size plus a margin for special tokens is within the limit cannot be
longer and are not asked about), and then by the ``long_inputs`` setting:

- ``"warn"`` (default): one :class:`LongInputWarning` per call, naming how many inputs and which
  positions, with their token counts; the call goes on (the server truncates them);
- ``"error"``: :class:`~hfrag.errors.InputError` with the positions, before any embedding
  request is sent (also what ``"warn"`` does when ``truncate=False``: the server would refuse);
- ``"ignore"``: nothing is counted or said.

Where the length cannot be known beforehand (no ``max_input_length`` in ``/info``, no
``/tokenize`` route: the router, OpenAI-form servers), nothing is counted; an endpoint without
``/tokenize`` is remembered per client and not asked again.
"""

from __future__ import annotations

import logging
import warnings
import weakref
from typing import Literal

from hfrag.errors import InferenceError, InputError, InvalidRequestError, NotFoundError
from hfrag.tasks.base import TaskClient

__all__ = ["LONG_INPUTS", "LongInputWarning", "LongInputs", "check_lengths", "long_inputs_message"]

LongInputs = Literal["warn", "error", "ignore"]
LONG_INPUTS: tuple[str, ...] = ("warn", "error", "ignore")
logger = logging.getLogger("hfrag.tasks")
# Tokens a tokenizer may add around a text ([CLS] [SEP], <s> </s>, a leading "▁"...): a text of
# fewer UTF-8 bytes than the limit less this margin cannot have more tokens than the limit.
_SPECIAL_MARGIN = 8
_SHOWN = 10
# Clients whose endpoint has no usable /tokenize: not asked again.
_NO_TOKENIZE: weakref.WeakSet[TaskClient] = weakref.WeakSet()


class LongInputWarning(UserWarning):
    """Inputs are longer than the endpoint's ``max_input_length``: the server truncates them."""


def long_inputs_message(
    positions: list[int], counts: list[int | None], total: int, limit: int, truncate: bool | None
) -> str:
    """What a call says about its over-long inputs."""
    shown = ", ".join(
        f"{p} ({c} tokens)" if c is not None else f"{p} (over {limit * 250} characters)"
        for p, c in zip(positions[:_SHOWN], counts[:_SHOWN], strict=True)
    )
    more = f" and {len(positions) - _SHOWN} more" if len(positions) > _SHOWN else ""
    what = (
        f"the server truncates them to their first {limit} tokens"
        if truncate is not False
        else "the server refuses them (truncate=False)"
    )
    return (
        f"{len(positions)} of {total} inputs are longer than the endpoint's max_input_length of "
        f"{limit} tokens, at positions {shown}{more}: {what}. Split long texts with a token-based "
        "splitter (hfrag's HuggingFaceInferenceTextSplitter cuts by the endpoint's tokenizer), "
        "or set long_inputs='error' to refuse them or 'ignore' to say nothing"
    )


def _could_be_long(text: str, prefix: str, limit: int) -> bool:
    return len((prefix + text).encode("utf-8")) + _SPECIAL_MARGIN > limit


async def check_lengths(
    client: TaskClient,
    texts: list[str],
    policy: LongInputs,
    *,
    truncate: bool | None,
    prompt_name: str | None = None,
    prefix: str = "",
    max_concurrency: int = 4,
) -> None:
    """Count and report ``texts`` (as sent: ``prefix`` prepended) longer than the endpoint takes.

    Raises:
        InputError: ``policy="error"``, or ``truncate=False``, and some texts are too long.
    """
    from hfrag.tasks.tokens import count_tokens, endpoint_limits

    if policy == "ignore" or not client.target.is_endpoint:
        return
    if client in _NO_TOKENIZE:
        return
    limit = (await endpoint_limits(client)).max_input_length
    if limit is None:
        return
    candidates = [i for i, text in enumerate(texts) if _could_be_long(text, prefix, limit)]
    if not candidates:
        return
    sent = [prefix + texts[i] for i in candidates]
    try:
        counts = await count_tokens(
            client, sent, prompt_name=prompt_name, max_concurrency=max_concurrency
        )
    except (NotFoundError, InvalidRequestError) as error:
        if error.status not in (404, 405, 422):
            raise
        # No /tokenize of TEI's form here: lengths cannot be known before sending.
        where = client.target.describe()
        logger.debug("no usable /tokenize at %s (%s); lengths unchecked", where, error)
        _NO_TOKENIZE.add(client)
        return
    except InferenceError as error:
        lost = [candidates[p] for p in error.positions or ()] or candidates
        raise error.with_positions(lost) from error
    over = [(i, n) for i, n in zip(candidates, counts, strict=True) if n is None or n > limit]
    if not over:
        return
    positions = [i for i, _ in over]
    message = long_inputs_message(positions, [n for _, n in over], len(texts), limit, truncate)
    if policy == "error" or truncate is False:
        raise InputError(message, positions=positions)
    # A fresh registry: every call says it, even with the same message as the last call.
    warnings.warn_explicit(message, LongInputWarning, __file__, 0, registry={})

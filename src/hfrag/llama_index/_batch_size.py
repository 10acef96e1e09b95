"""``batch_size`` and LlamaIndex's ``embed_batch_size``: two names of one setting, kept in step.

Every hfrag embedding class of LlamaIndex (dense and sparse) hands a whole batch call to its task
client, which cuts it into requests of ``batch_size``; LlamaIndex's own name for that size is
``embed_batch_size``. Either may be given (both only if they agree, or ``batch_size="auto"``),
and assigning one sets both (``embed_batch_size`` shows hfrag's default size for ``"auto"``).
A class's ``model_name`` left at LlamaIndex's default becomes the model id or endpoint.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, model_validator
from typing_extensions import Self

from hfrag.errors import ConfigurationError
from hfrag.tasks.engine import AUTO, DEFAULT_BATCH

__all__ = ["BATCH_FIELDS", "BatchSizeNames"]

BATCH_FIELDS = ("batch_size", "embed_batch_size")


class BatchSizeNames(BaseModel):
    """Mixin of a class with both ``batch_size`` and ``embed_batch_size`` fields and a
    ``model_name`` (LlamaIndex's) and ``_target_name()`` (hfrag's connection fields)."""

    @model_validator(mode="after")
    def _sync_names(self) -> Self:
        fields: Any = self
        given = [name for name in BATCH_FIELDS if name in self.model_fields_set]
        same = fields.batch_size in (fields.embed_batch_size, AUTO)
        if len(given) == 2 and not same:
            raise ConfigurationError(
                f"batch_size={fields.batch_size} and embed_batch_size={fields.embed_batch_size} "
                "disagree; they are the same setting: give one"
            )
        # One follows the other; with neither given, hfrag's default wins over LlamaIndex's.
        size = fields.embed_batch_size if given == ["embed_batch_size"] else fields.batch_size
        fields.batch_size = size  # sets both names
        if fields.model_name == type(self).model_fields["model_name"].default:
            fields.model_name = fields._target_name()
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        if name in BATCH_FIELDS:  # keep the two names of one setting in step
            # LlamaIndex's embed_batch_size is a number: with batch_size="auto" it shows the
            # size used when the endpoint says nothing (hfrag's default, not LlamaIndex's 10).
            shown = DEFAULT_BATCH if value == AUTO else value
            fields: Any = self  # checked as one assignment (InferenceFields._assign_together)
            fields._assign_together({"embed_batch_size": shown, "batch_size": value})
            return
        super().__setattr__(name, value)

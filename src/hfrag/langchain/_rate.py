"""The ``rate_limiter`` field of the LangChain embedding and rerank classes.

LangChain's chat models take a ``BaseRateLimiter`` and acquire it before every model call; these
classes take the same object and their task client acquires it before every request it sends
(each batch, and a batch sent again after an overload), so the limiter's rate is requests per
second to the endpoint.
"""

from __future__ import annotations

from langchain_core.rate_limiters import BaseRateLimiter
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RateLimitedFields"]


class RateLimitedFields(BaseModel):
    """Adds ``rate_limiter`` (left out of serialisation, as the chat models leave theirs)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    rate_limiter: BaseRateLimiter | None = Field(
        default=None,
        exclude=True,
        description=(
            "A LangChain rate limiter (e.g. InMemoryRateLimiter), acquired before every request, "
            "as a chat model acquires its own before every call."
        ),
    )

    def _request_rate_limiter(self) -> BaseRateLimiter | None:
        return self.rate_limiter

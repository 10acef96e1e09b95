"""Which credential goes where: the one credential rule of hfrag.

Resolution order: an explicit token, then ``HF_TOKEN``, then ``HUGGING_FACE_HUB_TOKEN``, then the
token saved by ``hf auth login``. A token found implicitly is sent only to Hugging Face's own
services (``huggingface.co``, ``hf.co``, ``*.huggingface.co``, ``*.huggingface.cloud``, over
https): a local TEI or any third-party server never sees the ambient token, and neither does a
Space (``*.hf.space``), since a Space runs whatever code its owner wrote. An explicit token is sent
to the URL it was given for, as ``Authorization: Bearer <token>``.

Pickling: a :class:`Secret` pickles with its value (handing a ``Secret`` to something that pickles
is the explicit choice); a token given as a plain string is wrapped in a :class:`LocalSecret`,
which is left out of pickles, so a pickled client carries no credential unless its token was a
``Secret``.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

_HF_HOSTS = frozenset({"huggingface.co", "hf.co"})
_HF_SUFFIXES = (".huggingface.co", ".huggingface.cloud")
_ENV_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


class Secret:
    """A string that never shows itself in ``repr``, ``str``, logs or error messages.

    It pickles and deep-copies with its value: give a token as a ``Secret`` to let a pickled
    client (for example one sent to a worker process) keep it.

    Example::

        >>> Secret("hf_abc")
        Secret('**********')
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        """The secret itself; only the code that builds the Authorization header calls this."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Secret, (self._value,))

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self


def _dropped() -> None:
    return None


class LocalSecret(Secret):
    """A credential given as a plain string: a :class:`Secret` that stays in this process.

    Copies keep it; a pickle leaves it out (it unpickles as ``None``, so an unpickled client
    falls back to the ambient-token rule). Give the token as a :class:`Secret` to carry it.
    """

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_dropped, ())

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


def is_hf_host(url: str) -> bool:
    """True for https URLs on Hugging Face's hosts, the only ones an implicit token may reach."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
    except ValueError:
        return False
    if parts.scheme != "https":
        return False
    return host in _HF_HOSTS or host.endswith(_HF_SUFFIXES)


def implicit_token() -> str | None:
    """The ambient token: ``HF_TOKEN``, ``HUGGING_FACE_HUB_TOKEN``, then the saved login token."""
    for name in _ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    try:
        from huggingface_hub import get_token
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        return None
    try:
        token = get_token()
    except Exception:  # a corrupt token file must not break a request to a local server
        return None
    return token.strip() if token else None


def token_for(url: str, explicit: Secret | None) -> str | None:
    """The token to send to ``url``: the explicit one, else the ambient one on HF hosts only."""
    if explicit is not None:
        return explicit.get_secret_value() or None
    if is_hf_host(url):
        token = implicit_token()
        if token is not None:
            from hfrag._checks import check_header_value

            check_header_value(
                "the ambient Hugging Face token (HF_TOKEN or the saved login)", token
            )
        return token
    return None

"""The schemas both frameworks' structured output takes, and the check of an answer against one.

A target is a pydantic class (answers come back as instances), a ``TypedDict`` (dicts, checked
by pydantic) or a JSON schema dict (dicts, checked with ``jsonschema`` when it is installed; it is
part of the ``langchain`` extra). :func:`spec_for` gives the task layer's
:class:`~hfrag.tasks.StructuredSpec`; :func:`validated` parses and checks an answer, raising
:class:`~hfrag.tasks.StructuredOutputError` with the raw text when it does not match.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.v1 import BaseModel as V1Model
from pydantic.v1 import ValidationError as V1ValidationError
from typing_extensions import is_typeddict

from hfrag.tasks import StructuredOutputError, StructuredSpec
from hfrag.tasks.structured import parse_object

__all__ = ["json_schema_of", "spec_for", "validated"]


def _is_model(target: Any) -> bool:
    return isinstance(target, type) and issubclass(target, BaseModel)


def _is_v1_model(target: Any) -> bool:
    return isinstance(target, type) and issubclass(target, V1Model)


def json_schema_of(target: Any) -> dict[str, Any]:
    """The JSON schema of a pydantic class, a TypedDict or a JSON schema dict."""
    if _is_model(target):
        return dict(target.model_json_schema())
    if is_typeddict(target):
        schema = dict(TypeAdapter(target).json_schema())
        schema.setdefault("title", target.__name__)
        return schema
    if isinstance(target, Mapping):
        return dict(target)
    raise TypeError(
        f"a structured-output schema is a pydantic class, a TypedDict or a JSON schema dict, "
        f"got {target!r}"
    )


def spec_for(
    target: Any, strict: bool | None = None, schema: dict[str, Any] | None = None
) -> StructuredSpec:
    """The task layer's request for ``target`` (its name from the class or the ``title``);
    ``schema`` is its JSON schema when the caller made it (LangChain's conversion)."""
    schema = schema if schema is not None else json_schema_of(target)
    name = getattr(target, "__name__", None) or schema.get("title") or "response"
    description = schema.get("description") if isinstance(schema.get("description"), str) else None
    clean = "".join(c if c.isalnum() or c in "_-" else "_" for c in str(name))
    return StructuredSpec(schema, clean, description, strict)


def validated(target: Any, text: str, schema: Mapping[str, Any] | None = None) -> Any:
    """``text`` (an answer's JSON) as ``target`` asks: an instance, or a dict checked against
    ``schema`` (default: the target's own; LangChain's reading of an annotated TypedDict, whose
    ``Annotated[T, default, "description"]`` makes a key optional, is passed in);
    :class:`~hfrag.tasks.StructuredOutputError` with ``text`` attached otherwise."""
    value = parse_object(text)
    try:
        if _is_model(target):
            return target.model_validate(value)
        if _is_v1_model(target):
            return target.parse_obj(value)
    except (ValidationError, V1ValidationError) as error:
        message = f"the answer does not match {target.__name__}: {error.errors()[:3]}"
        raise StructuredOutputError(message, text) from None
    try:
        import jsonschema  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - jsonschema comes with the langchain extra
        return value
    try:
        jsonschema.validate(value, dict(schema if schema is not None else json_schema_of(target)))
    except jsonschema.ValidationError as error:
        message = f"the answer does not match the schema: {error.message}"
        raise StructuredOutputError(message, text) from None
    return value

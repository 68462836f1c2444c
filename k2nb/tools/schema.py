"""JSON schemas for tools: derived from a Python signature, with ``$ref`` inlined for K2.

Moonshot is reported to reject ``$ref``/``$defs`` in tool parameters, so every schema we send is
self-contained. Descriptions come from the docstring (Google, NumPy or reST style).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import docstring_parser
import pydantic


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Return ``schema`` with every local ``$ref`` replaced by its definition and ``$defs`` dropped.

    Recursive definitions cannot be inlined; they raise ``ValueError`` naming the type.
    """
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}

    def resolve(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/"):
                name = ref.rsplit("/", 1)[-1]
                if name in seen:
                    raise ValueError(f"recursive type {name!r} cannot be sent as a tool schema")
                target = resolve(defs[name], seen + (name,))
                extra = {k: resolve(v, seen) for k, v in node.items() if k != "$ref"}
                return {**target, **extra}
            return {
                k: resolve(v, seen) for k, v in node.items() if k not in ("$defs", "definitions")
            }
        if isinstance(node, list):
            return [resolve(v, seen) for v in node]
        return node

    return resolve(schema, ())


def _strip_titles(node: Any) -> Any:
    # pydantic adds "title" everywhere; it only costs tokens.
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "title" and isinstance(value, str):
                continue
            if key == "properties" and isinstance(value, dict):
                out[key] = {name: _strip_titles(sub) for name, sub in value.items()}
            else:
                out[key] = _strip_titles(value)
        return out
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


def arguments_model(func: Callable[..., Any]) -> type[pydantic.BaseModel]:
    """A pydantic model of ``func``'s parameters, used both for the schema and for validation."""
    signature = inspect.signature(func)
    hints = _type_hints(func)
    docs = {p.arg_name: p.description for p in docstring_parser.parse(func.__doc__ or "").params}
    fields: dict[str, Any] = {}
    for name, param in signature.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {func.__name__}: *args/**kwargs cannot be described to a model")
        annotation = hints.get(name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[name] = (annotation, pydantic.Field(default, description=docs.get(name)))
    model_name = "".join(part.title() for part in func.__name__.split("_")) + "Arguments"
    config = pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=False)
    return pydantic.create_model(model_name, __config__=config, **fields)


def function_schema(func: Callable[..., Any]) -> dict[str, Any]:
    """The ``parameters`` JSON schema of ``func``, self-contained."""
    return model_parameters(arguments_model(func))


def model_parameters(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """A pydantic model's JSON schema as tool ``parameters``: refs inlined, no titles."""
    schema = _strip_titles(inline_refs(model.model_json_schema()))
    schema.setdefault("properties", {})
    schema.pop("additionalProperties", None)
    return schema


def function_description(func: Callable[..., Any]) -> str:
    """The docstring's summary and long description, without the parameter section."""
    doc = docstring_parser.parse(func.__doc__ or "")
    parts = [doc.short_description or "", doc.long_description or ""]
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


def _type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        import typing

        return typing.get_type_hints(func)
    except Exception:  # unresolvable forward references: fall back to raw annotations
        return {k: v for k, v in getattr(func, "__annotations__", {}).items() if k != "return"}

"""Tools and structured output for :class:`~smart_langchain.SmartChatModel`.

Both are bound provider-neutrally on the SmartChatModel and applied by each inner model, its own
way, at call time (``SmartChatModel._prepare``): the routed model and every probed candidate get
the same tools and the same schema, so their answers stay comparable.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from pydantic import BaseModel

__all__ = ["STRUCTURED_KEY", "TOOLS_KEY", "ToolsAndStructuredOutput"]

#: Call kwargs carrying provider options of ``bind_tools`` and a native structured-output spec.
TOOLS_KEY = "smart_tool_options"
STRUCTURED_KEY = "smart_structured_output"


class ToolsAndStructuredOutput:
    """``bind_tools`` and ``with_structured_output`` of a chat model routing to inner models
    (``self._models``: name -> inner chat model)."""

    _models: dict[str, BaseChatModel]

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools to every inner model (each formats them for its provider at call time).

        ``tool_choice`` takes the usual values (``"auto"``, ``"any"``, ``"none"``, a tool name).
        Provider options such as ``strict=`` or ``parallel_tool_calls=`` are passed to each inner
        model's own ``bind_tools``.
        """
        formatted = [convert_to_openai_tool(t) for t in tools]
        bound: dict[str, Any] = {"tools": formatted}
        if tool_choice is not None:
            bound["tool_choice"] = tool_choice
        for key in ("ls_structured_output_format", "structured_output_format"):
            if key in kwargs:
                bound[key] = kwargs.pop(key)
        if kwargs:
            bound[TOOLS_KEY] = kwargs
        return self.bind(**bound)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        include_raw: bool = False,
        method: str = "function_calling",
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Structured answers from every inner model, compared canonically.

        ``method="function_calling"`` (default) binds the schema as a forced tool on every inner
        model. ``"json_schema"`` and ``"json_mode"`` use each inner model's own native
        structured output when every inner model has it (ChatOpenAI and ChatAnthropic both do
        ``json_schema``; only ChatOpenAI does ``json_mode``); otherwise every model answers by
        function calling, with a warning naming the models that lack the method.
        """
        if method not in ("function_calling", "json_schema", "json_mode"):
            raise ValueError(
                f"with_structured_output: unknown method {method!r}; use 'function_calling', "
                "'json_schema' or 'json_mode'"
            )
        if method != "function_calling":
            unsupported = self._without_native(schema, method, kwargs)
            if not unsupported:
                return self._native_structured_output(schema, include_raw, method, kwargs)
            if schema is None:
                raise ValueError(
                    f"with_structured_output(method={method!r}) without a schema: "
                    f"{unsupported} cannot do it natively and function calling needs a schema"
                )
            warnings.warn(
                f"with_structured_output(method={method!r}): {unsupported} cannot do it "
                "natively, so every model answers by function calling instead",
                stacklevel=2,
            )
        return super().with_structured_output(schema, include_raw=include_raw, **kwargs)

    def _without_native(self, schema: Any, method: str, kwargs: dict[str, Any]) -> list[str]:
        """Inner models that cannot give structured output by ``method`` themselves."""
        missing = []
        for name, model in self._models.items():
            if type(model).with_structured_output is BaseChatModel.with_structured_output:
                missing.append(name)  # the base silently turns every method into tool calling
                continue
            try:
                model.with_structured_output(schema, method=method, **kwargs)
            except Exception:
                missing.append(name)
        return missing

    def _native_structured_output(
        self, schema: Any, include_raw: bool, method: str, kwargs: dict[str, Any]
    ) -> Runnable[LanguageModelInput, Any]:
        from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
        from langchain_core.runnables import RunnableMap, RunnablePassthrough

        is_pydantic = isinstance(schema, type) and issubclass(schema, BaseModel)
        json_schema = convert_to_json_schema(schema) if schema is not None else None
        spec = {"method": method, "schema": json_schema, "kwargs": kwargs}
        llm = self.bind(
            **{STRUCTURED_KEY: spec},
            ls_structured_output_format={
                "kwargs": {"method": method},
                "schema": convert_to_openai_tool(schema) if schema is not None else None,
            },
        )
        parser: Runnable[Any, Any] = (
            PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()
        )
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=lambda x: parser.invoke(x["raw"]), parsing_error=lambda _: None
        )
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks(
            [fallback], exception_key="parsing_error"
        )

"""llama-cpp-python's OpenAI-compatible server with llama.cpp's weight repacking off.

llama-cpp-python compiled natively on a CPU with AMX repacks the weights for its AMX kernels and
its first matrix product dies with SIGSEGV (see `branchpoint.agents.local_model`); the server
has no flag for it, so the default model parameters are patched before it starts.

Its `chatml-function-calling` format answers one tool call with both `tool_calls` and the
deprecated `function_call`, which autogen's OpenAI client refuses; the legacy field is dropped.
Usage: python tests/llama_server_main.py <llama_cpp.server arguments>
"""

from __future__ import annotations

from typing import Any

from llama_cpp import llama_chat_format
from llama_cpp import llama_cpp as bindings

_default_params = bindings.llama_model_default_params


def _params_without_repacking() -> Any:
    params = _default_params()
    params.use_extra_bufts = False
    return params


def _without_legacy_function_call(*args: Any, **kwargs: Any) -> Any:
    response = llama_chat_format.chatml_function_calling(*args, **kwargs)
    if isinstance(response, dict):
        for choice in response["choices"]:
            choice["message"].pop("function_call", None)
    return response


if __name__ == "__main__":
    bindings.llama_model_default_params = _params_without_repacking
    llama_chat_format.LlamaChatCompletionHandlerRegistry().register_chat_completion_handler(
        "chatml-function-calling", _without_legacy_function_call, overwrite=True
    )
    from llama_cpp.server.__main__ import main

    main()

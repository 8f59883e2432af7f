"""The ChatBackend protocol and its two backends: an OpenAI-compatible endpoint (via langchain-openai) and a local
transformers causal LM.

Importing this module imports neither torch, transformers nor langchain; each backend imports its library and
builds its client or loads its model on first use. Every failure of an endpoint or model is an `LLMError`, so
callers can fall back to the extractive engine.
"""
from __future__ import annotations

import contextvars
import os
import queue
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence
from urllib.parse import urlparse

from .errors import InputError, LLMError
from .settings import Settings

ROLES = ("system", "user", "assistant")
LOCAL_API_KEY = "not-needed"  # what local OpenAI-compatible servers (vLLM, llama.cpp, Ollama) accept
# For tokenizers without a chat template: plain "role: content" turns, then an open assistant turn.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)

Message = dict[str, str]


class ChatBackend(Protocol):
    """A chat model: the whole answer at once, or the answer as text pieces while it is generated."""

    name: str

    def complete(self, messages: list[Message]) -> str: ...

    def stream(self, messages: list[Message]) -> Iterator[str]: ...


def check_messages(messages: Sequence[Message]) -> list[Message]:
    """The messages as plain {"role", "content"} dicts, or InputError naming the first bad one."""
    if isinstance(messages, (str, bytes)) or not messages:
        raise InputError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise InputError(f"message {i} ({m!r:.80}) must be a dict with role in {ROLES} and a string content")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of a chain (e.g. ConnectionRefusedError under the SDK's APIConnectionError)."""
    seen = {id(exc)}
    while (nxt := exc.__cause__ or exc.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        exc = nxt
    return exc


def _one_line(text: object, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


_PIECE, _DONE, _FAIL = "piece", "done", "fail"


def _bounded(work: Callable[[Callable[[str], None], threading.Event], None], deadline_s: float,
             on_timeout: Callable[[], LLMError], on_error: Callable[[BaseException], LLMError],
             thread_name: str) -> Iterator[str]:
    """Run `work(emit, cancelled)` in a daemon thread and yield what it emits until it returns, fails or the
    deadline passes. The caller is never held past the deadline; the worker is told to stop (`cancelled`) and
    ends on its own at its next chunk or network timeout."""
    q: queue.Queue[tuple[str, Any]] = queue.Queue()
    cancelled = threading.Event()

    def run() -> None:
        try:
            work(lambda piece: q.put((_PIECE, piece)), cancelled)
            q.put((_DONE, None))
        except BaseException as exc:  # handed to the caller's thread, which raises it as LLMError
            q.put((_FAIL, exc))

    ctx = contextvars.copy_context()  # LangChain callbacks and tracing follow the caller's context
    threading.Thread(target=ctx.run, args=(run,), name=thread_name, daemon=True).start()
    deadline = time.monotonic() + deadline_s
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise on_timeout()
            try:
                kind, value = q.get(timeout=remaining)
            except queue.Empty:
                raise on_timeout() from None
            if kind == _PIECE:
                yield value
            elif kind == _DONE:
                return
            else:
                raise on_error(value) from value
    finally:
        cancelled.set()


class OpenAIChatBackend:
    """Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp, Ollama, LM Studio).

    The whole call, connection to last token, is bounded by `llm_timeout_s`, also against a server that
    trickles tokens forever. The client is built on first use; the API key is read from the environment
    variable named by `llm_api_key_env` then, or is a placeholder that local servers accept.
    """

    def __init__(self, settings: Settings) -> None:
        self.base_url = settings.llm_base_url.rstrip("/")
        self.model = settings.llm_model
        self.api_key_env = settings.llm_api_key_env
        self.timeout_s = float(settings.llm_timeout_s)
        self.temperature = float(settings.llm_temperature)
        self.max_tokens = int(settings.llm_max_tokens)
        if not self.base_url.startswith(("http://", "https://")):
            raise LLMError(f"setting llm_base_url={settings.llm_base_url!r} is not an http(s) URL; "
                           "use e.g. http://127.0.0.1:8000/v1")
        if not self.model:
            raise LLMError("setting llm_model is empty; name the model the endpoint serves")
        self.name = f"openai:{self.model}@{self.base_url}"
        self._chat = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Build the LangChain client (no network call)."""
        self._client()

    def _client(self):
        with self._lock:
            if self._chat is None:
                try:
                    from langchain_openai import ChatOpenAI

                    # ChatOpenAI sends only `max_completion_tokens`, which Ollama, LM Studio and older llama.cpp
                    # ignore; they read `max_tokens`, which OpenAI's own reasoning models reject.
                    official = urlparse(self.base_url).hostname == "api.openai.com"
                    self._chat = ChatOpenAI(
                        base_url=self.base_url,
                        model=self.model,
                        api_key=os.environ.get(self.api_key_env) or LOCAL_API_KEY,
                        timeout=self.timeout_s,
                        max_retries=0,  # retries would multiply the time budget; the caller falls back instead
                        temperature=self.temperature,
                        max_tokens=self.max_tokens,
                        use_responses_api=False,  # local servers speak /chat/completions only
                        extra_body=None if official else {"max_tokens": self.max_tokens},
                    )
                except Exception as exc:
                    raise LLMError(f"cannot set up the client for LLM endpoint {self.base_url} "
                                   f"({type(exc).__name__}: {_one_line(exc)})") from exc
            return self._chat

    def _to_langchain(self, messages: Sequence[Message]) -> list:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
        return [kinds[m["role"]](content=m["content"]) for m in check_messages(messages)]

    def _timeout(self) -> LLMError:
        return LLMError(f"LLM endpoint {self.base_url} (model {self.model}) gave no complete answer within "
                        f"{self.timeout_s:g} s; check the server or raise RAG_LLM_TIMEOUT_S")

    def _error(self, exc: BaseException) -> LLMError:
        """One line that names the endpoint and says what to do."""
        if isinstance(exc, LLMError):
            return exc
        where = f"LLM endpoint {self.base_url} (model {self.model})"
        try:
            import openai
        except ImportError:  # pragma: no cover - langchain-openai depends on openai
            openai = None
        if openai is not None:
            if isinstance(exc, openai.APITimeoutError):
                return self._timeout()
            if isinstance(exc, openai.APIConnectionError):
                cause = _root_cause(exc)
                return LLMError(f"cannot connect to {where} ({type(cause).__name__}: {_one_line(cause, 200)}); "
                                "start the server or set RAG_LLM_BASE_URL")
            if isinstance(exc, openai.APIStatusError):
                hint = {401: f"; set the API key in ${self.api_key_env}", 403: f"; check the key in ${self.api_key_env}",
                        404: "; check RAG_LLM_BASE_URL (it usually ends in /v1) and RAG_LLM_MODEL"}.get(exc.status_code, "")
                detail = re.sub(r"^Error code: \d+ - ", "", str(exc.message))
                return LLMError(f"{where} answered HTTP {exc.status_code}: {_one_line(detail, 200)}{hint}")
        return LLMError(f"{where} sent an unusable response ({type(exc).__name__}: {_one_line(exc, 200)})")

    def complete(self, messages: list[Message]) -> str:
        """The whole answer (one non-streaming request); LLMError on any failure, timeout or empty answer."""
        lc_messages = self._to_langchain(messages)
        chat = self._client()  # imports and setup are not part of the endpoint's time budget

        def work(emit: Callable[[str], None], cancelled: threading.Event) -> None:
            reply = chat.invoke(lc_messages)
            emit(str(reply.text))

        text = "".join(_bounded(work, self.timeout_s, self._timeout, self._error, "llm-openai-complete")).strip()
        if not text:
            raise LLMError(f"LLM endpoint {self.base_url} (model {self.model}) returned an empty answer")
        return text

    def stream(self, messages: list[Message]) -> Iterator[str]:
        """The answer as text pieces while the endpoint streams it; LLMError on failure, timeout or no text."""
        lc_messages = self._to_langchain(messages)  # bad messages and setup errors raise here, not on first next()
        chat = self._client()
        return self._stream(chat, lc_messages)

    def _stream(self, chat: Any, lc_messages: list) -> Iterator[str]:
        def work(emit: Callable[[str], None], cancelled: threading.Event) -> None:
            chunks = chat.stream(lc_messages)
            try:
                for chunk in chunks:
                    if cancelled.is_set():
                        return
                    piece = str(chunk.text)
                    if piece:
                        emit(piece)
            finally:
                chunks.close()  # closes the HTTP response

        got_text = False
        for piece in _bounded(work, self.timeout_s, self._timeout, self._error, "llm-openai-stream"):
            got_text = got_text or bool(piece.strip())
            yield piece
        if not got_text:
            raise LLMError(f"LLM endpoint {self.base_url} (model {self.model}) streamed no text")


class TransformersChatBackend:
    """A local causal LM (hub id in the cache, or a folder) with AutoTokenizer/AutoModelForCausalLM.

    Loaded on first use, once, thread-safely; greedy decoding of at most `llm_max_tokens` new tokens, stopped
    after `llm_timeout_s` seconds of generation. Generation runs one request at a time: on a CPU, parallel
    generations only slow each other down.
    """

    def __init__(self, settings: Settings) -> None:
        if not settings.local_model:
            raise LLMError("setting local_model is empty; name a hub id or a local folder")
        self.model_id = settings.local_model
        self.device = settings.local_device
        self.max_new_tokens = int(settings.llm_max_tokens)
        self.max_time_s = float(settings.llm_timeout_s)
        self.name = f"transformers:{self.model_id}"
        self._model = None
        self._tokenizer = None
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the tokenizer and model (from the local cache or folder; downloads only when the hub is allowed)."""
        with self._load_lock:
            if self._model is not None:
                return
            path = Path(self.model_id).expanduser()
            if self.model_id.startswith((".", "/", "~")) and not path.is_dir():
                raise LLMError(f"local model folder {self.model_id!r} does not exist; set RAG_LOCAL_MODEL to a "
                               "folder saved with save_pretrained() or to a hub id in the local cache")
            try:
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(self.model_id)
                # float32 on CPU: "auto" would keep bf16 checkpoints in bf16, which many CPUs run slowly.
                dtype = torch.float32 if str(self.device).startswith("cpu") else "auto"
                model = AutoModelForCausalLM.from_pretrained(self.model_id, dtype=dtype)
                model.to(self.device)
                model.eval()
            except Exception as exc:
                raise LLMError(
                    f"cannot load local model {self.model_id!r} on {self.device} ({type(exc).__name__}: "
                    f"{_one_line(exc, 200)}); set RAG_LOCAL_MODEL to a cached hub id or a model folder"
                ) from exc
            self._tokenizer, self._model = tokenizer, model

    @property
    def has_chat_template(self) -> bool:
        """Whether the tokenizer brings its own chat template (otherwise the plain role: content one is used)."""
        self.warm_up()
        return bool(getattr(self._tokenizer, "chat_template", None))

    def _template(self) -> str | None:
        return None if self.has_chat_template else FALLBACK_CHAT_TEMPLATE

    def format_prompt(self, messages: list[Message]) -> str:
        """The prompt text the model sees (for debugging and tests)."""
        self.warm_up()
        messages = check_messages(messages)
        try:
            return self._tokenizer.apply_chat_template(messages, chat_template=self._template(),
                                                       add_generation_prompt=True, tokenize=False)
        except Exception as exc:
            raise LLMError(f"the chat template of {self.model_id!r} failed ({type(exc).__name__}: "
                           f"{_one_line(exc, 200)})") from exc

    def _inputs(self, messages: list[Message]):
        messages = check_messages(messages)
        kwargs = dict(chat_template=self._template(), add_generation_prompt=True, tokenize=True, return_dict=True,
                      return_tensors="pt")
        try:
            try:
                # A question that contains "<|im_start|>system" stays plain text instead of opening a system turn.
                inputs = self._tokenizer.apply_chat_template(messages, sanitize_control_tokens=True, **kwargs)
            except (NotImplementedError, ValueError):  # tokenizers whose post-processor adds special tokens
                inputs = self._tokenizer.apply_chat_template(messages, **kwargs)
        except Exception as exc:
            raise LLMError(f"the chat template of {self.model_id!r} failed ({type(exc).__name__}: "
                           f"{_one_line(exc, 200)})") from exc
        return {k: v.to(self._model.device) for k, v in inputs.items()}

    def _generate(self, inputs: dict, streamer: Any, cancelled: threading.Event) -> Any:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), cancelled.is_set(), dtype=torch.bool,
                                  device=input_ids.device)

        tok = self._tokenizer
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        with self._generate_lock, torch.inference_mode():
            return self._model.generate(
                **inputs, do_sample=False, max_new_tokens=self.max_new_tokens, max_time=self.max_time_s,
                pad_token_id=pad_id, streamer=streamer, stopping_criteria=StoppingCriteriaList([_Cancelled()]),
            )

    def _failed(self, exc: BaseException) -> LLMError:
        if isinstance(exc, LLMError):
            return exc
        return LLMError(f"local model {self.model_id!r} failed to generate ({type(exc).__name__}: "
                        f"{_one_line(exc, 200)})")

    def complete(self, messages: list[Message]) -> str:
        """The whole answer, greedy; LLMError when the model fails or says nothing."""
        self.warm_up()
        inputs = self._inputs(messages)
        try:
            output = self._generate(inputs, None, threading.Event())
            prompt_len = inputs["input_ids"].shape[1]
            text = self._tokenizer.decode(output[0][prompt_len:], skip_special_tokens=True).strip()
        except Exception as exc:
            raise self._failed(exc) from exc
        if not text:
            raise LLMError(f"local model {self.model_id!r} generated no text")
        return text

    def stream(self, messages: list[Message]) -> Iterator[str]:
        """The answer as text pieces while the model generates it (TextIteratorStreamer in a thread)."""
        self.warm_up()  # loading errors and bad messages raise here, not on first next()
        return self._stream(self._inputs(messages))

    def _stream(self, inputs: dict) -> Iterator[str]:
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)

        def work(emit: Callable[[str], None], cancelled: threading.Event) -> None:
            failure: list[BaseException] = []

            def generate() -> None:
                try:
                    self._generate(inputs, streamer, cancelled)
                except BaseException as exc:
                    failure.append(exc)
                    streamer.end()  # wake the reader below

            threading.Thread(target=generate, name="llm-transformers-generate", daemon=True).start()
            for piece in streamer:
                if piece:
                    emit(piece)
            if failure:
                raise failure[0]

        # Generation stops itself at max_time; the extra margin covers the prompt's prefill and the hand-over.
        got_text = False
        for piece in _bounded(work, self.max_time_s + 30.0, self._timeout, self._failed, "llm-transformers-stream"):
            got_text = got_text or bool(piece.strip())
            yield piece
        if not got_text:
            raise LLMError(f"local model {self.model_id!r} generated no text")

    def _timeout(self) -> LLMError:
        return LLMError(f"local model {self.model_id!r} did not finish within {self.max_time_s:g} s; "
                        "use a smaller model or raise RAG_LLM_TIMEOUT_S")


def make_backend(settings: Settings) -> ChatBackend | None:
    """The chat backend `answer_engine` asks for; None for the extractive engine."""
    engine = settings.answer_engine
    if engine == "openai":
        return OpenAIChatBackend(settings)
    if engine == "transformers":
        return TransformersChatBackend(settings)
    if engine in ("extractive", "passage"):
        return None
    raise LLMError(f"setting answer_engine={engine!r} has no chat backend; use openai, transformers or extractive")

"""Answer commands: ask (registered in app.py). The rag package is imported inside the
command, so that the CLI starts fast."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from embedstack.cli.common import (
    BaseUrlOpt,
    CollectionArg,
    JsonOpt,
    err,
    load_model_with_status,
    open_existing,
    out,
    print_json,
    user_errors,
)

if TYPE_CHECKING:
    from embedstack.rag.answer import Answer
    from embedstack.rag.asking import AnswerStream


@user_errors
def ask(
    collection: CollectionArg,
    question: Annotated[str, typer.Argument(help="The question.")],
    k: Annotated[int, typer.Option("-k", "--k", help="Chunks to retrieve.")] = 5,
    llm: Annotated[
        str, typer.Option(help="smollm2 (local, offline) or openai:MODEL with --base-url.")
    ] = "smollm2",
    base_url: BaseUrlOpt = None,
    stream: Annotated[bool, typer.Option("--stream", help="Print the answer as it arrives.")] = (
        False
    ),
    history: Annotated[
        Path | None,
        typer.Option(help="Conversation file (JSON); read for follow-ups, then appended to."),
    ] = None,
    min_relevance: Annotated[
        float | None, typer.Option(help="Below this cosine, answer that the documents do not say.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question from the collection's documents, with numbered citations."""
    from embedstack.rag.asking import AnswerStream
    from embedstack.rag.history import read_history, write_history

    turns = read_history(history) if history else []
    with open_existing(collection) as kb:
        load_model_with_status(kb)
        with err.status(f"Loading {llm}…"):
            result = kb.ask(
                question, k=k, llm=llm, base_url=base_url, stream=stream and not as_json,
                history=turns, min_relevance=min_relevance,
            )  # fmt: skip
        # kb.ask streams when asked to (stream and not as_json), and only then.
        answer = print_stream(result) if isinstance(result, AnswerStream) else result
    if history:
        write_history(history, [*turns, {"role": "user", "content": question},
                                {"role": "assistant", "content": answer.text}])  # fmt: skip
    if as_json:
        print_json(answer.to_dict())
        return
    if not stream:
        out.print(Text(answer.text))
    if not answer.text.strip():
        err.print(f"({answer.llm} gave an empty answer; a larger model via --llm may do better)")
    for citation in answer.citations:
        out.print(
            Text(f"[{citation.number}] {citation.label} — {citation.chunk_id}"), soft_wrap=True
        )
    if answer.dropped_citations:
        err.print(f"(removed citations to sources that were not given: {answer.dropped_citations})")


def print_stream(stream: AnswerStream) -> Answer:
    """Write the answer's text as it arrives; return the whole answer."""
    for piece in stream:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    if stream.answer is None:  # cannot happen: the end of the iteration fills it in
        raise RuntimeError("the answer stream ended without an answer")
    return stream.answer

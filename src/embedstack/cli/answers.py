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
    from embedstack.rag.evidence import Evidence


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
    mode: Annotated[
        str,
        typer.Option(
            help="auto: the LLM answers, checked against the sources, which are quoted instead "
            "when it is not supported; extractive: quote the sources, no LLM; generative: the "
            "LLM's answer, checked."
        ),
    ] = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Answer a question from the collection's documents, with verified, numbered citations."""
    from embedstack.rag.asking import AnswerStream
    from embedstack.rag.history import read_history, write_history

    turns = read_history(history) if history else []
    with open_existing(collection) as kb:
        load_model_with_status(kb)
        with err.status(f"Loading {llm}…" if mode != "extractive" else "Searching…"):
            result = kb.ask(
                question, k=k, llm=llm, base_url=base_url, stream=stream and not as_json,
                history=turns, min_relevance=min_relevance, mode=mode,
            )  # fmt: skip
        # kb.ask streams when asked to (stream and not as_json), and only then.
        answer = print_stream(result) if isinstance(result, AnswerStream) else result
    if history:
        write_history(history, [*turns, {"role": "user", "content": question},
                                {"role": "assistant", "content": answer.text}])  # fmt: skip
    if as_json:
        print_json(answer.to_dict())
        return
    if answer.fallback:
        out.print(Text(f"({answer.fallback}; quoting the sources instead)", style="yellow"))
    if not stream or answer.fallback:
        out.print(answer_text(answer))
    elif answer.unsupported:
        err.print(Text(f"unsupported by the sources: {' '.join(answer.unsupported)}", "red"))
    if not answer.text.strip():
        err.print(f"({answer.llm} gave an empty answer; a larger model via --llm may do better)")
    for citation in answer.citations:
        out.print(
            Text(f"[{citation.number}] {citation.label} — {citation.chunk_id}"), soft_wrap=True
        )
    if answer.dropped_citations:
        err.print(f"(removed citations the sources do not support: {answer.dropped_citations})")
    if answer.evidence and answer.grounded:
        out.print(Text("Evidence:", style="bold"))
        for item in answer.evidence[:EVIDENCE_LINES]:
            out.print(evidence_line(item), soft_wrap=True)


EVIDENCE_LINES = 3


def answer_text(answer: Answer) -> Text:
    """Supported sentences plain, unsupported ones red and marked (as the web page does)."""
    from embedstack.rag.answer import marked

    text = Text()
    if not answer.sentences:
        return Text(answer.text)
    for number, sentence in enumerate(answer.sentences):
        joiner = "\n" if answer.mode == "extractive" else " "
        text.append(joiner if number else "")
        with_markers = marked(sentence.text, sentence.sources)
        if sentence.supported:
            text.append(with_markers)
        else:
            text.append(f"{with_markers} [unsupported]", style="red")
    return text


def evidence_line(item: Evidence) -> Text:
    """'[2] … $ 81,797 …' with what the question asks for in bold (line breaks as spaces,
    which keeps the highlight offsets)."""
    line = Text(item.text.replace("\n", " "))
    for start, end in item.highlights:
        line.stylize("bold", start, end)
    return Text(f"[{item.source}] ").append_text(line)


def print_stream(stream: AnswerStream) -> Answer:
    """Write the answer's text as it arrives; return the whole answer."""
    for piece in stream:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    if stream.answer is None:  # cannot happen: the end of the iteration fills it in
        raise RuntimeError("the answer stream ended without an answer")
    return stream.answer

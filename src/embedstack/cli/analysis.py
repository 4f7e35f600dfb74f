"""Analysis commands on a collection: cluster, recommend, map, duplicates (see app.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from embedstack.cli.common import (
    CollectionArg,
    JsonOpt,
    err,
    fail,
    load_model_with_status,
    open_existing,
    out,
    parse_filter,
    print_json,
    user_errors,
)

FilterOpt = Annotated[
    str | None, typer.Option("--filter", help='Only records matching, e.g. \'{"lang": "en"}\'.')
]
SNIPPET = 120


def snippet(text: str, size: int = SNIPPET) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= size else flat[: size - 1] + "…"


@user_errors
def cluster(
    collection: CollectionArg,
    method: Annotated[str, typer.Option(help="kmeans | agglomerative | hdbscan.")] = "kmeans",
    n: Annotated[
        int | None, typer.Option("--n", "-n", help="Number of clusters (default √(n/2), ≤ 50).")
    ] = None,
    min_cluster_size: Annotated[
        int | None, typer.Option(help="HDBSCAN: smallest cluster (default 0.5% of the items).")
    ] = None,
    reduce_dims: Annotated[
        int | None,
        typer.Option(help="Reduce to N dimensions with UMAP first (default: 5 for hdbscan)."),
    ] = None,
    distance_threshold: Annotated[
        float | None, typer.Option(help="Agglomerative: merge distance instead of --n.")
    ] = None,
    examples: Annotated[int, typer.Option(help="Most central records shown per cluster.")] = 3,
    name: Annotated[
        bool, typer.Option("--name", help="Ask the LLM (--llm) for a short name per cluster.")
    ] = False,
    llm: Annotated[str | None, typer.Option(help="LLM for --name (default smollm2).")] = None,
    filter: FilterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Group a collection's records by meaning: size, keywords and examples per cluster."""
    where = parse_filter(filter)
    params: dict = {"min_cluster_size": min_cluster_size}
    if reduce_dims is not None:
        params["reduce_dims"] = reduce_dims
    if distance_threshold is not None:
        params["distance_threshold"] = distance_threshold
    with open_existing(collection) as kb, err.status("Clustering…"):
        report = kb.cluster(
            method, n, filter=where, n_examples=examples,
            name=(llm or True) if name else False, **params,
        )  # fmt: skip
    if as_json:
        print_json(report.to_dict())
        return
    outliers = f", {report.outliers} outliers" if report.outliers else ""
    table = Table(title=Text(f"{len(report.topics)} clusters of {len(report.chunks)}{outliers}"))
    for column in ("#", "size", "label", "examples"):
        table.add_column(column, overflow="fold")
    for topic in report.topics:
        keywords = ", ".join(word for word, _ in topic.keywords[:8])
        label = f"{topic.name}\n{keywords}" if topic.name else keywords
        shown = "\n".join(f"• {snippet(c.text)}" for c in report.examples(topic))
        table.add_row(str(topic.cluster), str(topic.size), Text(label), Text(shown))
    out.print(table)


@user_errors
def recommend(
    collection: CollectionArg,
    like: Annotated[list[str], typer.Option("--like", help="Id of a record you like.")] = [],  # noqa: B006
    unlike: Annotated[
        list[str], typer.Option("--unlike", help="Id of a record you do not like.")
    ] = [],  # noqa: B006
    like_text: Annotated[
        list[str], typer.Option("--like-text", help="A text describing what you want.")
    ] = [],  # noqa: B006
    profile: Annotated[
        Path | None, typer.Option(help="Profile JSON: its liked/disliked ids join; updated.")
    ] = None,
    strategy: Annotated[
        str, typer.Option(help="average_vector | best_score | sum_scores.")
    ] = "average_vector",
    k: Annotated[int, typer.Option("-k", "--k", help="Number of recommendations.")] = 10,
    filter: FilterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Records like the --like ones and unlike the --unlike ones (which are never shown)."""
    from embedstack.analysis.recommendation import Profile

    where = parse_filter(filter)
    taste = Profile.load(profile) if profile is not None and profile.exists() else None
    if not (like or unlike or like_text or taste):
        fail("give at least one --like, --unlike or --like-text (or a --profile with some)")
    with open_existing(collection) as kb:
        if like_text:
            load_model_with_status(kb)
        positive: list = [*like, *({"text": text} for text in like_text)]
        hits = kb.recommend(positive, unlike, strategy=strategy, k=k, filter=where, profile=taste)
    if profile is not None:
        (taste or Profile()).like(*like).unlike(*unlike).save(profile)
    if as_json:
        print_json([hit.to_dict() for hit in hits])
        return
    table = Table(title=Text(f"{len(hits)} recommendations ({strategy})"))
    for column in ("#", "score", "id", "text"):
        table.add_column(column, overflow="fold")
    for rank, hit in enumerate(hits, start=1):
        table.add_row(str(rank), f"{hit.score:.4f}", Text(hit.id), Text(snippet(hit.text, 160)))
    out.print(table)


@user_errors
def draw_map(
    collection: CollectionArg,
    out_path: Annotated[Path, typer.Option("--out", help="map.html (interactive) or map.png.")],
    method: Annotated[str, typer.Option(help="umap | pca | tsne.")] = "umap",
    color_by: Annotated[
        str | None, typer.Option(help="Metadata field to colour by (default: the clusters).")
    ] = None,
    n: Annotated[
        int | None, typer.Option("--n", "-n", help="Clusters to colour by (default √(n/2)).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Most points drawn (an even sample past it).")] = (
        20_000
    ),
    filter: FilterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Draw a collection in 2-D, as an interactive HTML page or a PNG."""
    where = parse_filter(filter)
    with open_existing(collection) as kb, err.status(f"Projecting with {method}…"):
        written = kb.map(
            out_path, method=method, color_by=color_by, n_clusters=n, filter=where, limit=limit
        )
        count = min(kb.count(where), limit)
    if as_json:
        print_json({"path": str(written), "points": count})
    else:
        out.print(Text(f"Wrote {written} ({count} points)."))


@user_errors
def duplicates(
    collection: CollectionArg,
    threshold: Annotated[float, typer.Option(help="Cosine similarity that counts as near.")] = (
        0.95
    ),
    min_size: Annotated[int, typer.Option(help="Smallest group.")] = 2,
    filter: FilterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Groups of near-duplicate records, biggest first."""
    where = parse_filter(filter)
    with open_existing(collection) as kb, err.status("Comparing records…"):
        groups = kb.duplicates(threshold, min_size, filter=where)
    if as_json:
        print_json([[chunk.id for chunk in group] for group in groups])
        return
    table = Table(title=Text(f"{len(groups)} groups of near-duplicates (cosine ≥ {threshold})"))
    for column in ("#", "size", "ids", "first text"):
        table.add_column(column, overflow="fold")
    for number, group in enumerate(groups, start=1):
        ids = ", ".join(chunk.id for chunk in group)
        table.add_row(str(number), str(len(group)), Text(ids), Text(snippet(group[0].text)))
    out.print(table)

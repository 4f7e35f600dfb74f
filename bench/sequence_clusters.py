"""Do k-mer profiles group real sequences by family? V-measure of k-means and agglomerative
clusters (n_clusters = number of families) on k-mer vectors, for several k, with and without
IDF, beside a composition (k=1) and a random-vector baseline.

Data: the test files of BioPython's source distribution (Biopython License Agreement /
BSD 3-Clause; the sequences themselves come from Pfam and Rfam seed alignments, CC0, and from
GenBank records). It is downloaded once from PyPI, by pip, into bench/.cache/ (gitignored):

    python -m pip download --no-binary :all: --no-deps biopython==1.88 -d bench/.cache

and read from the tarball; nothing else is fetched. Families (label = the file they come from):
- protein: Pfam seeds 120_Rick_ant, 7kD_DNA_binding, 12TM_1, 3Beta_HSD, ArsP_1, COX2_TM,
  Alpha_E1_glycop, Cyclin_N (Tests/Stockholm/pfam1-8.seed.txt), globins
  (Stockholm/globins45.ali), chalcone synthases (Clustalw/protein.aln), hedgehog
  (Clustalw/hedgehog.aln), bacterial solute-binding proteins (Clustalw/msaprobs.fa);
- DNA/RNA: Rfam seeds BTnc005, SraC_RyeA, McaS, IRES_KSHV, BMV3_UPD-PK3
  (Stockholm/rfam1-5.seed.txt), Opuntia chloroplast sequences (Clustalw/opuntia.aln), the
  cold-regulated cor6.6/kin genes of Brassicaceae (GenBank/cor6_6.gb, read by embedstack).
Families over 20 members keep their first 20 (Cyclin_N has 95), so no family outweighs the rest.
Alignment gaps are dropped by the k-mer model; IDF is fitted on the set being clustered.

    python bench/sequence_clusters.py [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
from machine import cpu_line
from sklearn.metrics import v_measure_score

from embedstack.analysis import Clusterer
from embedstack.ingest.sequences import read_sequences
from embedstack.models.kmer import KmerProfile

VERSION = "1.88"
CACHE = Path(__file__).resolve().parent / ".cache"
SDIST = CACHE / f"biopython-{VERSION}.tar.gz"
CAP = 20
SEEDS = 10  # random-vector baseline: mean over this many draws

PROTEIN_FILES = [
    *[(f"Stockholm/pfam{n}.seed.txt", "stockholm") for n in range(1, 9)],
    ("Stockholm/globins45.ali", "stockholm"),
    ("Clustalw/protein.aln", "clustal"),
    ("Clustalw/hedgehog.aln", "clustal"),
    ("Clustalw/msaprobs.fa", "fasta"),
]
DNA_FILES = [
    *[(f"Stockholm/rfam{n}.seed.txt", "stockholm") for n in range(1, 6)],
    ("Clustalw/opuntia.aln", "clustal"),
    ("GenBank/cor6_6.gb", "genbank"),
]
SETTINGS = {"dna": [1, 3, 4, 5, 6], "protein": [1, 2, 3]}
LABELS = {  # files without a Pfam/Rfam ID line
    "globins45": "globins",
    "protein": "chalcone_synthase",
    "hedgehog": "hedgehog",
    "msaprobs": "solute_binding",
    "opuntia": "opuntia_cpDNA",
}
KMEANS_SEEDS = 5  # k-means on ~100 points depends on its start: the mean over 5 seeds


def sdist() -> tarfile.TarFile:
    """BioPython's source tarball, downloaded by pip from PyPI once."""
    if not SDIST.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
             f"biopython=={VERSION}", "-d", str(CACHE), "--quiet"],
            check=True,
        )  # fmt: skip
    return tarfile.open(SDIST)


def family(archive: tarfile.TarFile, name: str, format: str) -> tuple[str, list[str]]:
    """(family label, up to CAP sequences) from one test file."""
    member = archive.extractfile(f"biopython-{VERSION}/Tests/{name}")
    assert member is not None, name
    data = member.read()
    if format == "genbank":  # through embedstack's reader, as an ingest would
        records = read_sequences(Path(name), data, "genbank")
        return "cor6.6/kin", [r.sequence for r in records][:CAP]
    from Bio import SeqIO

    parsed = list(SeqIO.parse(io.StringIO(data.decode()), format))
    stem = Path(name).name.split(".")[0]
    label = LABELS.get(stem, stem)
    for line in data.decode().splitlines():
        if line.startswith("#=GF ID"):
            label = line.split()[-1]
    return label, [str(r.seq).upper() for r in parsed][:CAP]


def data_set(archive: tarfile.TarFile, files: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    sequences, labels = [], []
    for name, format in files:
        label, found = family(archive, name, format)
        sequences += found
        labels += [label] * len(found)
    return sequences, labels


def v_measures(vectors: np.ndarray, labels: list[str], n: int) -> dict[str, float]:
    kmeans = [
        Clusterer("kmeans", n, reduce_dims=None, n_init=10, random_state=seed).fit(vectors)
        for seed in range(KMEANS_SEEDS)
    ]
    ward = Clusterer("agglomerative", n, reduce_dims=None).fit(vectors)
    return {
        "kmeans": float(np.mean([v_measure_score(labels, c.labels_) for c in kmeans])),
        "agglomerative": float(v_measure_score(labels, ward.labels_)),
    }


def run(alphabet: str, sequences: list[str], labels: list[str]) -> list[dict]:
    n = len(set(labels))
    rows = []
    rng = np.random.default_rng(0)
    draws = [v_measures(rng.normal(size=(len(sequences), 64)), labels, n) for _ in range(SEEDS)]
    rows.append({
        "alphabet": alphabet, "features": f"random 64-d (mean of {SEEDS})", "idf": "-",
        **{m: float(np.mean([d[m] for d in draws])) for m in ("kmeans", "agglomerative")},
        "seconds": None,
    })  # fmt: skip
    for k in SETTINGS[alphabet]:
        for idf in (False, True):
            started = time.perf_counter()
            vectors = KmerProfile(alphabet, k, idf=idf).fit_transform(sequences)
            seconds = time.perf_counter() - started
            name = f"k={k} ({vectors.shape[1]}-d)" + (" composition" if k == 1 else "")
            rows.append({"alphabet": alphabet, "features": name, "idf": "yes" if idf else "no",
                         **v_measures(vectors, labels, n), "seconds": seconds})  # fmt: skip
    if alphabet == "dna":
        started = time.perf_counter()
        vectors = KmerProfile("dna", 5, idf=False, canonical=True).fit_transform(sequences)
        seconds = time.perf_counter() - started
        rows.append({"alphabet": alphabet, "features": "k=5 canonical (512-d)", "idf": "no",
                     **v_measures(vectors, labels, n), "seconds": seconds})  # fmt: skip
    return rows


def speed(archive: tarfile.TarFile) -> list[str]:
    """Reading and embedding a real chloroplast genome, and one megabase of random DNA."""
    member = archive.extractfile(f"biopython-{VERSION}/Tests/GenBank/NC_000932.gb")
    assert member is not None
    data = member.read()
    profile = KmerProfile("dna", 5, idf=False)
    profile.transform(["ACGTACGTAC"])  # the vocabulary is built once per (alphabet, k)
    started = time.perf_counter()
    (record,) = read_sequences(Path("NC_000932.gb"), data, "genbank")
    read_ms = 1000 * (time.perf_counter() - started)
    started = time.perf_counter()
    profile.transform([record.sequence])
    embed_ms = 1000 * (time.perf_counter() - started)
    lines = [
        f"NC_000932.gb (A. thaliana chloroplast, {len(record.sequence):,} bp, "
        f"{record.metadata['feature_count']} features): read {read_ms:.0f} ms, "
        f"k=5 profile {embed_ms:.1f} ms"
    ]
    genome = "".join(np.random.default_rng(0).choice(list("ACGT"), 1_000_000))
    for k in (5, 8):
        profile = KmerProfile("dna", k, idf=False)
        profile.transform(["ACGTACGTAC"])
        best = min(_timed(profile, genome) for _ in range(3))
        lines.append(f"1 Mb of random DNA, k={k} ({profile.dim:,}-d): {best:.0f} ms (best of 3)")
    return lines


def _timed(profile: KmerProfile, sequence: str) -> float:
    started = time.perf_counter()
    profile.transform([sequence])
    return 1000 * (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    print(f"{cpu_line()}")
    rows = []
    with sdist() as archive:
        for alphabet, files in (("protein", PROTEIN_FILES), ("dna", DNA_FILES)):
            sequences, labels = data_set(archive, files)
            lengths = [len(s.replace("-", "").replace(".", "")) for s in sequences]
            families = ", ".join(sorted(set(labels)))
            print(f"{alphabet}: {len(sequences)} sequences in {len(set(labels))} families "
                  f"({families}); lengths {min(lengths)}-{max(lengths)}")  # fmt: skip
            rows += run(alphabet, sequences, labels)
        speeds = speed(archive)
    print()
    print(f"| alphabet | features | IDF | V k-means (mean of {KMEANS_SEEDS}) | V agglomerative "
          "| embed ms |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for r in rows:
        ms = "-" if r["seconds"] is None else f"{1000 * r['seconds']:.1f}"
        print(f"| {r['alphabet']} | {r['features']} | {r['idf']} | {r['kmeans']:.3f} | "
              f"{r['agglomerative']:.3f} | {ms} |")  # fmt: skip
    print()
    print("\n".join(speeds))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

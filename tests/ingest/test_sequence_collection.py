"""Sequences through the product: FASTA, FASTQ and GenBank files into a sequence collection
(one row per record), search by a sequence, bad files reported, the rest stored."""

from __future__ import annotations

import gzip
import json

import pytest

from embedstack import Collection
from tests.cli.test_cli import run
from tests.sequence_samples import (
    COR_GENBANK,
    ILLUMINA_FASTQ,
    YERSINIA_PLASMID,
    YERSINIA_PLASMID_TITLE,
    YERSINIA_PROTEINS,
)

pytest.importorskip("Bio", reason="the bio extra (biopython) is not installed")


@pytest.fixture
def genes(tmp_path):
    folder = tmp_path / "genes"
    folder.mkdir()
    (folder / "cor.gbk").write_text(COR_GENBANK)
    (folder / "reads.fastq").write_text(ILLUMINA_FASTQ)
    plasmid = f">{YERSINIA_PLASMID_TITLE}\n{YERSINIA_PLASMID}\n"
    (folder / "plasmid.fa.gz").write_bytes(gzip.compress(plasmid.encode()))
    (folder / "empty.fasta").write_text("")
    (folder / "bad.fa").write_text(">x1 a bad record\nACGTJJACGT\n")
    (folder / "readme.md").write_text("# not a sequence: a folder walk leaves it out\n")
    return folder


def test_dna_files_become_one_row_per_record_and_bad_files_are_reported(genes, tmp_path):
    with Collection.open(tmp_path / "kb", model="kmer-dna") as kb:
        assert kb.modality == "sequence"
        report = kb.ingest(genes)
        failed = {problem.path.rsplit("/", 1)[-1]: problem.reason for problem in report.failed}
        assert set(failed) == {"empty.fasta", "bad.fa"}, failed
        assert "invalid letter 'J'" in failed["bad.fa"]
        assert len(report.added) == 3 and kb.count() == 2 + 3 + 1
        rows = {chunk.metadata["record_id"]: chunk for chunk in kb.get(kb.ids())}
        cor = rows["X55053.1"]
        assert cor.metadata["format"] == "genbank" and cor.metadata["alphabet"] == "dna"
        assert cor.metadata["length"] == len(cor.text) == 513
        assert cor.metadata["organism"] == "Arabidopsis thaliana"
        # A gene's own first 300 bases find it, then its homologue (Kin1) before the rest.
        hits = kb.search(cor.text[:300], k=3)
        assert hits[0].id == cor.id and hits[0].score > 0.6
        assert kb.search(YERSINIA_PLASMID[100:400], k=1)[0].metadata["file_name"] == (
            "plasmid.fa.gz"
        )
        again = kb.ingest(genes)
        assert len(again.unchanged) == 3 and kb.count() == 6


def test_proteins_and_the_cli(tmp_path):
    (tmp_path / "proteins.faa").write_text(YERSINIA_PROTEINS)
    kb = tmp_path / "proteins-kb"
    done = run("ingest", kb, tmp_path / "proteins.faa", "--model", "kmer-protein", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["count"] == 3
    with Collection.open(kb) as collection:
        first = collection.get(collection.ids()[0])[0]
    assert first.metadata["alphabet"] == "protein"
    found = run("search", kb, first.text[5:120], "-k", "1", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["id"] == first.id

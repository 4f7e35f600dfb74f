"""FASTA, FASTQ and GenBank files read into records, on real sequences; every bad file is a
one-line IngestError naming the record."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import pytest

from embedstack import load_model
from embedstack.errors import IngestError
from embedstack.ingest.sequences import (
    SEQUENCE_EXTENSIONS,
    SequenceRecord,
    read_sequences,
    sequence_format,
    sniff_sequence_format,
)
from tests.sequence_samples import (
    COR_GENBANK,
    ILLUMINA_FASTQ,
    YERSINIA_PLASMID,
    YERSINIA_PLASMID_TITLE,
    YERSINIA_PROTEINS,
)

pytest.importorskip("Bio", reason="the bio extra (biopython) reads sequence files")

PLASMID_FASTA = f">{YERSINIA_PLASMID_TITLE}\n" + "\n".join(
    YERSINIA_PLASMID[i : i + 60] for i in range(0, len(YERSINIA_PLASMID), 60)
)
MIXED_FASTA = PLASMID_FASTA + "\n" + YERSINIA_PROTEINS


def read(text: str | bytes, format: str, name: str = "x", **options) -> list[SequenceRecord]:
    data = text.encode() if isinstance(text, str) else text
    return read_sequences(Path(name), data, format, **options)


def test_fasta_records_detect_dna_and_protein_per_record():
    records = read(MIXED_FASTA, "fasta", "pPCP1.fasta")
    assert [r.alphabet for r in records] == ["dna", "protein", "protein", "protein"]
    plasmid, transposase = records[0], records[1]
    assert plasmid.sequence == YERSINIA_PLASMID and plasmid.id == "gi|45478711|ref|NC_005816.1|"
    assert plasmid.description.startswith("Yersinia pestis biovar Microtus")
    assert plasmid.metadata == {
        "record_id": "gi|45478711|ref|NC_005816.1|",
        "record_index": 0,
        "description": plasmid.description,
        "length": 600,
        "alphabet": "dna",
        "sequence_format": "fasta",
    }
    assert transposase.description == "putative transposase [Yersinia pestis]"
    assert len(transposase.sequence) == 340 and transposase.metadata["record_index"] == 1


def test_the_alphabet_can_be_forced():
    records = read(PLASMID_FASTA, "fasta", alphabet="protein")
    assert records[0].alphabet == "protein"


def test_genbank_records_carry_organism_taxonomy_molecule_and_features():
    cor66, kin1 = read(COR_GENBANK, "genbank", "cor6_6.gb")
    assert (cor66.id, kin1.id) == ("X55053.1", "M81224.1")
    assert cor66.description == "A.thaliana cor6.6 mRNA"
    assert len(cor66.sequence) == 513 and cor66.alphabet == "dna"
    meta = cor66.metadata
    assert meta["organism"] == "Arabidopsis thaliana" and meta["molecule_type"] == "mRNA"
    assert meta["taxonomy"][:2] == ["Eukaryota", "Viridiplantae"]
    assert meta["taxonomy"][-1] == "Arabidopsis"
    assert meta["feature_count"] == 3 and meta["length"] == 513
    assert kin1.metadata["organism"] == "Brassica napus"


def test_fastq_reads_carry_their_mean_quality():
    reads = read(ILLUMINA_FASTQ, "fastq", "run.fq")
    assert [r.id for r in reads] == [
        "EAS54_6_R1_2_1_413_324",
        "EAS54_6_R1_2_1_540_792",
        "EAS54_6_R1_2_1_443_348",
    ]
    first = reads[0]
    assert first.sequence == "CCCTTCTTGTCTTCAGCGTTTCTCC" and first.alphabet == "dna"
    # ";" is Phred 26, "3" 18, "7" 22, "8" 23 (Sanger offset 33): ";;3;;;;;;;;;;;;7;;;;;;;88"
    assert first.metadata["mean_quality"] == round((21 * 26 + 18 + 22 + 2 * 23) / 25, 2)
    assert first.description == ""  # the title is only the id


def test_gzip_files_are_read_and_detected(tmp_path):
    packed = gzip.compress(COR_GENBANK.encode())
    path = tmp_path / "cor6_6.gbk.gz"
    assert sequence_format(path, packed) == "genbank"
    assert [r.id for r in read_sequences(path, packed, "genbank")] == ["X55053.1", "M81224.1"]
    with pytest.raises(IngestError, match="damaged gzip file"):
        read(packed[: len(packed) // 2], "genbank")


def test_records_embed_with_the_kmer_models():
    records = read(MIXED_FASTA, "fasta")
    by_alphabet = {"dna": load_model("kmer-dna"), "protein": load_model("kmer-protein")}
    for record in records:
        vector = by_alphabet[record.alphabet].encode(record.sequence)
        assert vector.shape == (by_alphabet[record.alphabet].dim,)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (PLASMID_FASTA, "fasta"),
        (ILLUMINA_FASTQ, "fastq"),
        (COR_GENBANK, "genbank"),
        ("\ufeff\n" + PLASMID_FASTA, "fasta"),
        ("> a quoted line in Markdown\n\nSome prose.\n", None),
        ("@decorator\ndef f(): pass\n", None),
        ("plain text", None),
        ("", None),
    ],
)
def test_sniffing_by_content(data, expected):
    assert sniff_sequence_format(data.encode()) == expected
    assert sniff_sequence_format(gzip.compress(data.encode())) == expected


def test_format_by_extension_then_content():
    assert SEQUENCE_EXTENSIONS[".faa"] == "fasta" and SEQUENCE_EXTENSIONS[".fq"] == "fastq"
    assert sequence_format(Path("a.fa"), PLASMID_FASTA.encode()) == "fasta"
    assert sequence_format(Path("a.fa"), COR_GENBANK.encode()) == "genbank"  # content wins
    assert sequence_format(Path("a.FASTQ"), b"junk") == "fastq"  # the parser will say why
    assert sequence_format(Path("README"), ILLUMINA_FASTQ.encode()) == "fastq"
    assert sequence_format(Path("notes.md"), PLASMID_FASTA.encode()) is None
    assert sequence_format(Path("notes.txt"), PLASMID_FASTA.encode()) is None


@pytest.mark.parametrize(
    ("data", "format", "message"),
    [
        ("", "fasta", "no sequences found: the FASTA file is empty"),
        ("\n\n", "fastq", "no sequences found: the FASTQ file is empty"),
        ("just some words\n", "fasta", "not FASTA: the first line does not start with '>'"),
        (">empty\n>next\nACGT\n", "fasta", "record 'empty': empty sequence"),
        (">\n\n>b\nACGT\n", "fasta", "record 1: empty sequence"),
        (
            ">cor66\n" + YERSINIA_PLASMID[:16] + "J" + YERSINIA_PLASMID[16:] + "\n",
            "fasta",
            "record 'cor66': invalid letter 'J' at position 17 for DNA",
        ),
        (
            ">p1\nMKV1LLA\n",
            "fasta",
            "record 'p1': invalid letter '1' at position 4 for protein",
        ),
        (ILLUMINA_FASTQ.rsplit("\n", 2)[0] + "\n", "fastq", "malformed FASTQ after record "),
        (ILLUMINA_FASTQ.replace(";;3;;", ";;3", 1), "fastq", "malformed FASTQ in the first"),
        (COR_GENBANK[:1500], "genbank", "malformed GenBank in the first record"),
        ("@r1\nACGU\n+\nIIII\n", "fastq", None),  # valid: RNA letters are DNA here
        (b"\x00\x01binary", "fasta", "binary content"),
        (b">x\nAC\xffGT\n", "fasta", "byte 0xff at offset 5 is not UTF-8"),
        (PLASMID_FASTA, "embl", "unknown sequence format 'embl'"),
    ],
)
def test_bad_files_are_one_line_errors_naming_the_record(data, format, message):
    if message is None:
        assert read(data, format)[0].alphabet == "dna"
        return
    with pytest.raises(IngestError) as caught:
        read(data, format)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_record_with_no_letters_names_the_record():
    contig_only = COR_GENBANK.split("ORIGIN")[0] + "CONTIG      join(X55053.1:1..513)\n//\n"
    with pytest.raises(IngestError, match="record 'X55053.1': no sequence letters"):
        read(contig_only, "genbank")


def test_without_biopython_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "Bio", None)  # what an uninstalled package looks like
    with pytest.raises(IngestError, match=r"needs BioPython: pip install 'embedstack\[bio\]'"):
        read(PLASMID_FASTA, "fasta")


def test_a_bad_alphabet_override_is_refused():
    with pytest.raises(IngestError, match="alphabet must be auto, dna or protein"):
        read(PLASMID_FASTA, "fasta", alphabet="rna")

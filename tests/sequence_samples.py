"""Small real sequences for the sequence tests (from BioPython 1.88's test files, which took
them from GenBank/RefSeq: public records).

- COR_GENBANK: two records of `Tests/GenBank/cor6_6.gb`: Arabidopsis thaliana cor6.6 mRNA
  (X55053.1) and rapeseed Kin1 mRNA (M81224.1), homologous cold-regulated genes.
- YERSINIA_PLASMID: the first 600 bases of Yersinia pestis plasmid pPCP1 (NC_005816.1).
- YERSINIA_PROTEINS: three proteins of that plasmid (NC_005816.faa), FASTA (titles shortened).
- ILLUMINA_FASTQ: `Tests/Quality/example.fastq`, three Illumina reads.
"""

COR_GENBANK = """\
LOCUS       ATCOR66M      513 bp    mRNA            PLN       02-MAR-1992
DEFINITION  A.thaliana cor6.6 mRNA.
ACCESSION   X55053
VERSION     X55053.1  GI:16229
KEYWORDS    antifreeze protein homology; cold-regulated gene; cor6.6 gene; KIN1
            homology.
SOURCE      thale cress.
  ORGANISM  Arabidopsis thaliana
            Eukaryota; Viridiplantae; Streptophyta; Embryophyta; Tracheophyta;
            euphyllophytes; Spermatophyta; Magnoliophyta; eudicotyledons;
            Rosidae; Capparales; Brassicaceae; Arabidopsis.
REFERENCE   1  (bases 1 to 513)
  AUTHORS   Thomashow,M.F.
  TITLE     Direct Submission
  JOURNAL   Submitted (01-FEB-1991) M.F. Thomashow, Dept. Crop and Soil
            Sciences, Dept. Microbiology, Michigan State University, East
            Lansing, Michigan 48824, USA
REFERENCE   2  (bases 1 to 513)
  AUTHORS   Gilmour,S.J., Artus,N.N. and Thomashow,M.F.
  TITLE     cDNA sequence analysis and expression of two cold-regulated genes
            of Arabidopsis thaliana
  JOURNAL   Plant Mol. Biol. 18 (1), 13-21 (1992)
  MEDLINE   92119220
COMMENT     Cor6.6 homologous to KIN1. KIN1 is a cold-regulated Arabidopsis
            gene with suggested similarity to type I fish antifreeze proteins.
FEATURES             Location/Qualifiers
     source          1..513
                     /organism="Arabidopsis thaliana"
                     /strain="Columbia"
                     /db_xref="taxon:3702"
     gene            50..250
                     /gene="cor6.6"
     CDS             50..250
                     /gene="cor6.6"
                     /note="cold regulated"
                     /codon_start=1
                     /protein_id="CAA38894.1"
                     /db_xref="GI:16230"
                     /db_xref="SWISS-PROT:P31169"
                     /translation="MSETNKNAFQAGQAAGKAEEKSNVLLDKAKDAAAAAGASAQQAG
                     KSISDAAVGGVNFVKDKTGLNK"
BASE COUNT      194 a     82 c    104 g    133 t
ORIGIN      
        1 aacaaaacac acatcaaaaa cgattttaca agaaaaaaat atctgaaaaa tgtcagagac
       61 caacaagaat gccttccaag ccggtcaggc cgctggcaaa gctgaggaga agagcaatgt
      121 tctgctggac aaggccaagg atgctgctgc tgcagctgga gcttccgcgc aacaggcggg
      181 aaagagtata tcggatgcgg cagtgggagg tgttaacttc gtgaaggaca agaccggcct
      241 gaacaagtag cgatccgagt caactttggg agttataatt tcccttttct aattaattgt
      301 tgggattttc aaataaaatt tgggagtcat aattgattct cgtactcatc gtacttgttg
      361 ttgtttttag tgttgtaatg ttttaatgtt tcttctccct ttagatgtac tacgtttgga
      421 actttaagtt taatcaacaa aatctagttt aagttctaaa aaaaaaaaaa aaaaaaaaaa
      481 aaaaaaaaaa aaaaaaaaaa aaaaaaaaaa aaa
//
LOCUS       BNAKINI       441 bp    mRNA            PLN       27-APR-1993
DEFINITION  Rapeseed Kin1 protein (kin1) mRNA, complete cds.
ACCESSION   M81224
VERSION     M81224.1  GI:167145
KEYWORDS    .
SOURCE      Brassica napus (cultivar Jet neuf) cold induced leaf cDNA to mRNA.
  ORGANISM  Brassica napus
            Eukaryota; Viridiplantae; Embryophyta; Tracheophyta; Spermatophyta;
            Magnoliophyta; eudicotyledons; core eudicots; Rosidae; eurosids II;
            Brassicales; Brassicaceae; Brassica.
REFERENCE   1  (bases 1 to 441)
  AUTHORS   Orr,W., Iu,B., White,T., Robert,L.S. and Singh,J.
  TITLE     Nucleotide sequence of a winter B. napus Kin 1 cDNA
  JOURNAL   Plant Physiol. 98, 1532-1534 (1992)
FEATURES             Location/Qualifiers
     source          1..441
                     /organism="Brassica napus"
                     /cultivar="Jet neuf"
                     /db_xref="taxon:3708"
                     /dev_stage="cold induced"
                     /tissue_type="leaf"
     gene            34..300
                     /gene="kin1"
     CDS             34..231
                     /gene="kin1"
                     /codon_start=1
                     /evidence=experimental
                     /protein_id="AAA32993.1"
                     /db_xref="GI:167146"
                     /translation="MADNKQSFQAGQASGRAEEKGNVLMDKVKDAATAAGASAQTAGQ
                     KITEAAGGAVNLVKEKTGMNK"
     polyA_signal    241..247
                     /gene="kin1"
                     /note="putative"
     polyA_signal    294..300
                     /gene="kin1"
                     /note="putative"
     polyA_site      441
                     /gene="kin1"
BASE COUNT      129 a     76 c    110 g    126 t
ORIGIN      
        1 aaaaaaacac aacaaaactc aataaataaa caaatggcag acaacaagca gagcttccaa
       61 gccggtcaag cctctggtcg tgctgaggag aagggtaatg tgctgatgga caaggtcaag
      121 gatgctgcta ccgcagctgg agcgtctgcg caaaccgcgg gacagaagat aacggaggcg
      181 gcagggggag ccgttaatct cgtgaaggag aagaccggca tgaacaagta gccccattgg
      241 aaataaaatt gggagttata gtttcccttt ttaatgttaa tcgttgtggt tttaaataaa
      301 aattgggtgt tctaattgat cttcaccgta gttgttgttg ttgttgtttt tagtgtttga
      361 agtaatgttt tcaaccttta ggtgtatgtc ttgatgttta tgtacttagt tcccccttaa
      421 tgaacatctg atttaagctt c
//
"""

YERSINIA_PLASMID_TITLE = (
    "gi|45478711|ref|NC_005816.1| Yersinia pestis biovar Microtus str. 91001 plasmid pPCP1"
)
YERSINIA_PLASMID = (
    "TGTAACGAACGGTGCAATAGTGATCCACACCCAACGCCTGAAATCAGATCCAGGGGGTAATCTGCTCTCC"
    "TGATTCAGGAGAGTTTATGGTCACTTTTGAGACAGTTATGGAAATTAAAATCCTGCACAAGCAGGGAATG"
    "AGTAGCCGGGCGATTGCCAGAGAACTGGGGATCTCCCGCAATACCGTTAAACGTTATTTGCAGGCAAAAT"
    "CTGAGCCGCCAAAATATACGCCGCGACCTGCTGTTGCTTCACTCCTGGATGAATACCGGGATTATATTCG"
    "TCAACGCATCGCCGATGCTCATCCTTACAAAATCCCGGCAACGGTAATCGCTCGCGAGATCAGAGACCAG"
    "GGATATCGTGGCGGAATGACCATTCTCAGGGCATTCATTCGTTCTCTCTCGGTTCCTCAGGAGCAGGAGC"
    "CTGCCGTTCGGTTCGAAACTGAACCCGGACGACAGATGCAGGTTGACTGGGGCACTATGCGTAATGGTCG"
    "CTCACCGCTTCACGTGTTCGTTGCTGTTCTCGGATACAGCCGAATGCTGTACATCGAATTCACTGACAAT"
    "ATGCGTTATGACACGCTGGAGACCTGCCATCGTAATGCGT"
)

YERSINIA_PROTEINS = """\
>gi|45478712|ref|NP_995567.1| putative transposase [Yersinia pestis]
MVTFETVMEIKILHKQGMSSRAIARELGISRNTVKRYLQAKSEPPKYTPRPAVASLLDEYRDYIRQRIAD
AHPYKIPATVIAREIRDQGYRGGMTILRAFIRSLSVPQEQEPAVRFETEPGRQMQVDWGTMRNGRSPLHV
FVAVLGYSRMLYIEFTDNMRYDTLETCHRNAFRFFGGVPREVLYDNMKTVVLQRDAYQTGQHRFHPSLWQ
FGKEMGFSPRLCRPFRAQTKGKVERMVQYTRNSFYIPLMTRLRPMGITVDVETANRHGLRWLHDVANQRK
HETIQARPCDRWLEEQQSMLALPPEKKEYDVHLDENLVNFDKHPLHHPLSIYDSFCRGVA
>gi|45478713|ref|NP_995568.1| transposase/IS protein [Yersinia pestis]
MMMELQHQRLMALAGQLQLESLISAAPALSQQAVDQEWSYMDFLEHLLHEEKLARHQRKQAMYTRMAAFP
AVKTFEEYDFTFATGAPQKQLQSLRSLSFIERNENIVLLGPSGVGKTHLAIAMGYEAVRAGIKVRFTTAA
DLLLQLSTAQRQGRYKTTLQRGVMAPRLLIIDEIGYLPFSQEEAKLFFQVIAKRYEKSAMILTSNLPFGQ
WDQTFAGDAALTSAMLDRILHHSHVVQIKGESYRLRQKRKAGVIAEANPE
>gi|45478714|ref|NP_995569.1| putative replication regulatory protein [Yersinia pestis]
MNKQQQTALNMARFIRSQSLILLEKLDALDADEQAAMCERLHELAEELQNSIQARFEAESETGT
"""

ILLUMINA_FASTQ = """\
@EAS54_6_R1_2_1_413_324
CCCTTCTTGTCTTCAGCGTTTCTCC
+
;;3;;;;;;;;;;;;7;;;;;;;88
@EAS54_6_R1_2_1_540_792
TTGGCAGGCCAAGGCCGATGGATCA
+
;;;;;;;;;;;7;;;;;-;;;3;83
@EAS54_6_R1_2_1_443_348
GTTGCTTCTGGCGTGGGTGGGGGGG
+
;;;;;;;;;;;9;7;;.7;393333
"""

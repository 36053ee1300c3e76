"""The paper's evaluation metrics, as the reference code people compare against computes them.

Every metric accumulates with ``update(...)`` and finishes with ``compute() -> dict``; states merge across
batches (:meth:`Metric.merge`) and processes (:meth:`Metric.sync`). Networks behind the metrics (audio
embedders, classifiers, joint models) are named, swappable backends whose names appear in the results.

- :mod:`.fad`: Fréchet Audio Distance (+ FAD∞); :mod:`.vggish`: VGGish front end and network
- :mod:`.kld`: KL divergence of classifier probabilities
- :mod:`.mcc`: MuLan cycle consistency / CLAP score
- :mod:`.beats`: BCS, BHS, F1 (original and LORIS) and a beat-tracker F-measure against visual beats
- :mod:`.report`: tables like the paper's, and a JSON report
"""

from v2meow.metrics.base import Metric, mean_std
from v2meow.metrics.beats import (
    TABLE2_SEGMENT_SECONDS,
    BeatAlignment,
    BeatFMeasure,
    beat_counts,
    beat_scores,
    detect_onsets,
    f1_from_means,
    onset_bins,
    segment_clip,
    track_beats,
)
from v2meow.metrics.fad import AudioEmbedder, FrechetAudioDistance, embed_audio, fad_inf_fit, frechet_distance
from v2meow.metrics.kld import AudioClassifier, ClassKLDivergence, chunk_probabilities, kl_divergence, split_chunks
from v2meow.metrics.mcc import JointCosine, JointEmbedder, cosine_similarity, crop_seconds
from v2meow.metrics.report import BASELINES, PAPER_COLUMNS, Column, Report, format_table
from v2meow.metrics.vggish import VGGish, VGGishEmbedder, fad_examples, log_mel_spectrogram, vggish_examples

__all__ = [
    "Metric",
    "mean_std",
    "FrechetAudioDistance",
    "AudioEmbedder",
    "embed_audio",
    "frechet_distance",
    "fad_inf_fit",
    "VGGish",
    "VGGishEmbedder",
    "log_mel_spectrogram",
    "vggish_examples",
    "fad_examples",
    "ClassKLDivergence",
    "AudioClassifier",
    "kl_divergence",
    "split_chunks",
    "chunk_probabilities",
    "JointCosine",
    "JointEmbedder",
    "cosine_similarity",
    "crop_seconds",
    "BeatAlignment",
    "BeatFMeasure",
    "detect_onsets",
    "onset_bins",
    "beat_counts",
    "beat_scores",
    "f1_from_means",
    "segment_clip",
    "track_beats",
    "TABLE2_SEGMENT_SECONDS",
    "Report",
    "Column",
    "format_table",
    "PAPER_COLUMNS",
    "BASELINES",
]

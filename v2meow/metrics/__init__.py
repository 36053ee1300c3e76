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

# Each name is imported from its module when first used, so that importing one metric (the candidate score of
# every best-of-N generation imports v2meow.metrics.alignment) does not import scipy for FAD and KLD.
_MODULES = {
    "base": ("Metric", "mean_std"),
    "beats": ("TABLE2_SEGMENT_SECONDS", "BeatAlignment", "BeatFMeasure", "beat_counts", "beat_scores", "detect_onsets",
              "f1_from_means", "onset_bins", "segment_clip", "track_beats"),
    "fad": ("AudioEmbedder", "FrechetAudioDistance", "embed_audio", "fad_inf_fit", "frechet_distance"),
    "kld": ("AudioClassifier", "ClassKLDivergence", "chunk_probabilities", "kl_divergence", "split_chunks"),
    "mcc": ("JointCosine", "JointEmbedder", "cosine_similarity", "crop_seconds"),
    "report": ("BASELINES", "PAPER_COLUMNS", "Column", "Report", "format_table"),
    "vggish": ("VGGish", "VGGishEmbedder", "fad_examples", "log_mel_spectrogram", "vggish_examples"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}
__all__ = list(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

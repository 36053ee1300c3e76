"""Tiny randomly initialised configurations of the real pretrained classes (a few thousand parameters each).

Each is the configuration dict of the same transformers class (or architecture dict) as the real checkpoint,
so tests exercise the real code paths with no weights and no network.
"""

from __future__ import annotations

# CLIPVisionConfig: 32-pixel images, 8-pixel patches, projection to 24-d.
CLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32,
            patch_size=8, projection_dim=24)
# HubertConfig: HuBERT-base's convolutional front end (hop 320, receptive field 400) at width 16.
HUBERT = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
              conv_dim=[16] * 7, conv_stride=[5, 2, 2, 2, 2, 2, 2], conv_kernel=[10, 3, 3, 3, 3, 2, 2],
              num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
# Wav2Vec2BertConfig: w2v-BERT 2.0's input (80 mel bins stacked by 2 = 160) with two small conformer layers.
W2V_BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                output_hidden_size=32, conv_depthwise_kernel_size=5, feature_projection_input_dim=160,
                position_embeddings_type="relative_key", left_max_position_embeddings=16,
                right_max_position_embeddings=4)
# EncodecConfig at 16 kHz: hop 320 = 50 frames/s, codebooks of 64, up to 8 levels (2.4 kbps).
ENCODEC = dict(sampling_rate=16000, hidden_size=16, num_filters=4, num_residual_layers=1,
               upsampling_ratios=[8, 5, 4, 2], codebook_size=64, num_lstm_layers=1, target_bandwidths=[0.6, 1.2, 2.4])
# DacConfig at 16 kHz: hop 2·4·5·8 = 320 = 50 frames/s, 6 codebooks of 64.
DAC = dict(encoder_hidden_size=4, downsampling_ratios=[2, 4, 5, 8], decoder_hidden_size=16, n_codebooks=6,
           codebook_size=64, codebook_dim=4, sampling_rate=16000)
# ClapConfig: 16-d joint space; the audio tower keeps CLAP's 256 spectrogram size (what its feature
# extractor produces for 10 s at 48 kHz) with two tiny Swin stages.
CLAP = dict(projection_dim=16,
            text_config=dict(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=32, max_position_embeddings=80, pad_token_id=1),
            audio_config=dict(hidden_size=16, patch_embeds_hidden_size=8, depths=[1, 1], num_attention_heads=[2, 2],
                              window_size=8, spec_size=256, num_mel_bins=64, projection_dim=16))
# ViT-VQGAN (enhancing-transformers layout): 32-pixel images, 8-pixel patches → 16 codes of 64.
VITVQ = dict(image_size=32, patch_size=8, dim=16, depth=1, heads=2, dim_head=8, mlp_dim=32, embed_dim=4, n_embed=64)
WORDS = "warm acoustic guitar aggressive techno drums calm piano music dark synth bright"


def write_tiny_tokenizer(path) -> str:
    """A word-level ``tokenizer.json`` with RoBERTa's special tokens (ids 0–3) → its path."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for w in WORDS.split():
        vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.save(str(path))
    return str(path)

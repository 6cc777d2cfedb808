"""Decoder LLMs for the zoo: a tiny Llama-style and a tiny GPT-2-style model (random init).

Both are built from a ``transformers`` config (the optional ``accelsim[llm]`` extra), so
they run offline in seconds: byte-level vocabulary (256 tokens: the UTF-8 bytes of the
text, see :func:`accelsim.trace.llm.encode_text`), a few layers of width 128. Their
registered input shape is ``(T,)``: one sample is a sequence of ``T`` token ids.
Importing this module does not import ``transformers``; building a model does.
"""
from __future__ import annotations

from accelsim.zoo.registry import import_library, register

#: Byte-level vocabulary: every UTF-8 byte is a token.
BYTE_VOCAB = 256

LLAMA_TINY = dict(vocab_size=BYTE_VOCAB, hidden_size=128, intermediate_size=352,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=512, rms_norm_eps=1e-5, tie_word_embeddings=False,
                  hidden_act="silu")
GPT2_TINY = dict(vocab_size=BYTE_VOCAB, n_embd=128, n_layer=2, n_head=4, n_positions=512,
                 activation_function="gelu_new", bos_token_id=0, eos_token_id=0)


def _transformers():
    return import_library("transformers", "decoder LLMs (accelsim[llm])")


def _build(config_cls: str, model_cls: str, params: dict, overrides: dict, seed: int):
    import torch

    tf = _transformers()
    config = getattr(tf, config_cls)(**{**params, **overrides})
    config._attn_implementation = "sdpa"
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = getattr(tf, model_cls)(config)
    return model.eval()


@register("llama_tiny", (32,),
          "Llama-style decoder (transformers): 2 layers, width 128, GQA 4/2 heads, SwiGLU 352, "
          "byte vocabulary; input (T=32 token ids)")
def llama_tiny(seed: int = 0, **overrides):
    """A random-initialised Llama-style decoder (``LlamaForCausalLM``)."""
    return _build("LlamaConfig", "LlamaForCausalLM", LLAMA_TINY, overrides, seed)


@register("gpt2_tiny", (32,),
          "GPT-2-style decoder (transformers): 2 layers, width 128, 4 heads, Conv1D projections, "
          "byte vocabulary; input (T=32 token ids)")
def gpt2_tiny(seed: int = 0, **overrides):
    """A random-initialised GPT-2-style decoder (``GPT2LMHeadModel``)."""
    return _build("GPT2Config", "GPT2LMHeadModel", GPT2_TINY, overrides, seed)


#: Zoo names that are decoder LLMs (captured with prompts, prefill and decode phases).
DECODERS = ("llama_tiny", "gpt2_tiny")

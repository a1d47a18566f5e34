//! Whisper's text decoder with a self-attention cache, built from candle's layers (`Linear`,
//! `LayerNorm`, matmul, softmax) and the same weights as candle's model.
//!
//! candle's own `TextDecoder` caches only the cross-attention keys and values: every step runs the
//! whole token sequence through every layer again, so a step costs as much as all steps before it
//! (10–25 ms a token for tiny.en on two cores at 20 tokens). Here each step runs only the new token,
//! against the cached keys and values of the earlier ones: a couple of milliseconds, most of it the
//! output projection onto the 51,864-token vocabulary.

use std::collections::HashMap;

use candle_core::{Module, Tensor};
use candle_nn::{LayerNorm, Linear};

#[derive(Debug)]
struct Attention {
    query: Linear,
    /// Whisper's key projections have no bias.
    key: Linear,
    value: Linear,
    out: Linear,
}

#[derive(Debug)]
struct Layer {
    self_norm: LayerNorm,
    self_attention: Attention,
    cross_norm: LayerNorm,
    cross_attention: Attention,
    mlp_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

#[derive(Debug)]
pub(super) struct TextDecoder {
    /// [vocabulary, d]: the token embedding, and (tied) the output projection.
    embedding: Tensor,
    /// [max positions, d].
    positions: Tensor,
    layers: Vec<Layer>,
    norm: LayerNorm,
    heads: usize,
}

/// One decoding's state: the cross-attention keys and values of its audio, and the self-attention
/// keys and values of the tokens so far.
#[derive(Debug)]
pub(super) struct Decoding<'a> {
    decoder: &'a TextDecoder,
    /// Per layer: keys transposed [heads, head_dim, frames], values [heads, frames, head_dim].
    cross: Vec<(Tensor, Tensor)>,
    /// Per layer: keys and values [heads, tokens, head_dim].
    cache: Vec<Option<(Tensor, Tensor)>>,
    tokens: usize,
}

impl TextDecoder {
    /// From the Hugging Face names (`model.decoder.…`) that candle's Whisper loads.
    pub fn load(tensors: &HashMap<String, Tensor>, layers: usize, heads: usize) -> Result<TextDecoder, String> {
        let get = |name: &str| tensors.get(name).cloned().ok_or_else(|| format!("the model has no {name}"));
        let linear = |name: &str, bias: bool| -> Result<Linear, String> {
            let bias = if bias { Some(get(&format!("{name}.bias"))?) } else { None };
            Ok(Linear::new(get(&format!("{name}.weight"))?, bias))
        };
        let norm = |name: &str| -> Result<LayerNorm, String> {
            Ok(LayerNorm::new(get(&format!("{name}.weight"))?, get(&format!("{name}.bias"))?, 1e-5))
        };
        let attention = |name: &str| -> Result<Attention, String> {
            Ok(Attention {
                query: linear(&format!("{name}.q_proj"), true)?,
                key: linear(&format!("{name}.k_proj"), false)?,
                value: linear(&format!("{name}.v_proj"), true)?,
                out: linear(&format!("{name}.out_proj"), true)?,
            })
        };
        let layers = (0..layers)
            .map(|i| {
                let layer = format!("model.decoder.layers.{i}");
                Ok(Layer {
                    self_norm: norm(&format!("{layer}.self_attn_layer_norm"))?,
                    self_attention: attention(&format!("{layer}.self_attn"))?,
                    cross_norm: norm(&format!("{layer}.encoder_attn_layer_norm"))?,
                    cross_attention: attention(&format!("{layer}.encoder_attn"))?,
                    mlp_norm: norm(&format!("{layer}.final_layer_norm"))?,
                    fc1: linear(&format!("{layer}.fc1"), true)?,
                    fc2: linear(&format!("{layer}.fc2"), true)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(TextDecoder {
            embedding: get("model.decoder.embed_tokens.weight")?,
            positions: get("model.decoder.embed_positions.weight")?,
            layers,
            norm: norm("model.decoder.layer_norm")?,
            heads,
        })
    }

    /// Starts decoding the audio whose encoder output is `features` [1, frames, d].
    pub fn start(&self, features: &Tensor) -> candle_core::Result<Decoding<'_>> {
        let features = features.squeeze(0)?;
        let cross = self
            .layers
            .iter()
            .map(|layer| {
                let keys = self.split_heads(&layer.cross_attention.key.forward(&features)?)?;
                let values = self.split_heads(&layer.cross_attention.value.forward(&features)?)?;
                Ok((keys.transpose(1, 2)?.contiguous()?, values))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Decoding { decoder: self, cross, cache: vec![None; self.layers.len()], tokens: 0 })
    }

    /// [tokens, d] → [heads, tokens, head_dim].
    fn split_heads(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (tokens, d) = x.dims2()?;
        x.reshape((tokens, self.heads, d / self.heads))?.transpose(0, 1)?.contiguous()
    }

    /// The logits over the vocabulary of hidden states [n, d], one row each. One pass over the
    /// output projection (80 MB for tiny.en, the bulk of a step's memory traffic) for all rows.
    pub fn logits(&self, hidden: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
        self.embedding.matmul(&hidden.t()?)?.t()?.to_vec2()
    }
}

impl Decoding<'_> {
    /// Feeds `tokens` (the prompt, then one token at a time) and returns their final hidden states
    /// [tokens, d].
    pub fn feed(&mut self, tokens: &[u32]) -> candle_core::Result<Tensor> {
        let decoder = self.decoder;
        let (past, new) = (self.tokens, tokens.len());
        let ids = Tensor::new(tokens, decoder.embedding.device())?;
        let mut x = decoder.embedding.index_select(&ids, 0)?.add(&decoder.positions.narrow(0, past, new)?)?;
        // New tokens see every earlier token and themselves, not the ones after them.
        let mask = if new > 1 {
            let mask: Vec<f32> = (0..new)
                .flat_map(|i| (0..past + new).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 }))
                .collect();
            Some(Tensor::from_vec(mask, (new, past + new), decoder.embedding.device())?)
        } else {
            None
        };
        for (i, layer) in decoder.layers.iter().enumerate() {
            let h = layer.self_norm.forward(&x)?;
            let attention = &layer.self_attention;
            let query = decoder.split_heads(&attention.query.forward(&h)?)?;
            let mut keys = decoder.split_heads(&attention.key.forward(&h)?)?;
            let mut values = decoder.split_heads(&attention.value.forward(&h)?)?;
            if let Some((past_keys, past_values)) = &self.cache[i] {
                keys = Tensor::cat(&[past_keys, &keys], 1)?;
                values = Tensor::cat(&[past_values, &values], 1)?;
            }
            let attended = self.attend(&query, &keys.transpose(1, 2)?, &values, mask.as_ref())?;
            self.cache[i] = Some((keys, values));
            x = (x + attention.out.forward(&attended)?)?;

            let h = layer.cross_norm.forward(&x)?;
            let query = decoder.split_heads(&layer.cross_attention.query.forward(&h)?)?;
            let (keys, values) = &self.cross[i];
            let attended = self.attend(&query, keys, values, None)?;
            x = (x + layer.cross_attention.out.forward(&attended)?)?;

            let h = layer.fc1.forward(&layer.mlp_norm.forward(&x)?)?.gelu_erf()?;
            x = (x + layer.fc2.forward(&h)?)?;
        }
        self.tokens += new;
        decoder.norm.forward(&x)
    }

    /// Scaled dot-product attention of `query` [heads, n, hd] over `keys` [heads, hd, m] and `values`
    /// [heads, m, hd]: [n, heads × hd].
    fn attend(
        &self,
        query: &Tensor,
        keys: &Tensor,
        values: &Tensor,
        mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let (heads, n, head_dim) = query.dims3()?;
        let mut scores = (query.matmul(keys)? * (head_dim as f64).powf(-0.5))?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?;
        }
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        weights.matmul(values)?.transpose(0, 1)?.reshape((n, heads * head_dim))
    }

    /// How many tokens it has been fed.
    #[cfg(test)]
    pub fn tokens(&self) -> usize {
        self.tokens
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};

    use super::*;

    /// A random decoder; the cached step-by-step run must match running all tokens at once.
    fn random(layers: usize, d: usize, heads: usize, vocabulary: usize) -> TextDecoder {
        let mut tensors = HashMap::new();
        let mut put = |name: String, shape: &[usize]| {
            tensors.insert(name, Tensor::randn(0f32, 0.3, shape, &Device::Cpu).unwrap());
        };
        put("model.decoder.embed_tokens.weight".into(), &[vocabulary, d]);
        put("model.decoder.embed_positions.weight".into(), &[16, d]);
        put("model.decoder.layer_norm.weight".into(), &[d]);
        put("model.decoder.layer_norm.bias".into(), &[d]);
        for i in 0..layers {
            let l = format!("model.decoder.layers.{i}");
            for norm in ["self_attn_layer_norm", "encoder_attn_layer_norm", "final_layer_norm"] {
                put(format!("{l}.{norm}.weight"), &[d]);
                put(format!("{l}.{norm}.bias"), &[d]);
            }
            for attention in ["self_attn", "encoder_attn"] {
                for p in ["q", "k", "v", "out"] {
                    put(format!("{l}.{attention}.{p}_proj.weight"), &[d, d]);
                    if p != "k" {
                        put(format!("{l}.{attention}.{p}_proj.bias"), &[d]);
                    }
                }
            }
            put(format!("{l}.fc1.weight"), &[4 * d, d]);
            put(format!("{l}.fc1.bias"), &[4 * d]);
            put(format!("{l}.fc2.weight"), &[d, 4 * d]);
            put(format!("{l}.fc2.bias"), &[d]);
        }
        TextDecoder::load(&tensors, layers, heads).unwrap()
    }

    #[test]
    fn step_by_step_equals_all_at_once() {
        let decoder = random(2, 16, 4, 30);
        let features = Tensor::randn(0f32, 1.0, (1, 10, 16), &Device::Cpu).unwrap();
        let tokens = [3u32, 7, 1, 29, 5, 5];
        let mut all = decoder.start(&features).unwrap();
        let together = all.feed(&tokens).unwrap();
        let mut one = decoder.start(&features).unwrap();
        let mut rows = vec![one.feed(&tokens[..3]).unwrap()];
        for token in &tokens[3..] {
            rows.push(one.feed(&[*token]).unwrap());
        }
        assert_eq!(one.tokens(), 6);
        let separately = Tensor::cat(&rows, 0).unwrap();
        let difference = (together - separately).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(difference < 1e-4, "{difference}");
        // Logits: a row per hidden state, one per vocabulary entry: the dot products with the
        // embedding.
        let hidden = all.feed(&[2, 9]).unwrap();
        let logits = decoder.logits(&hidden).unwrap();
        assert_eq!((logits.len(), logits[0].len()), (2, 30));
        for (row, logits) in logits.iter().enumerate() {
            let product = (decoder.embedding.get(4).unwrap() * hidden.get(row).unwrap()).unwrap();
            let expected = product.sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!((logits[4] - expected).abs() < 1e-4);
        }
        assert_eq!(hidden.dtype(), DType::F32);
    }
}

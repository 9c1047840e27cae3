//! The S-sample marginal likelihood (thesis eq. 8) on the GPU: exact for B = 0, exact for
//! every S when the flow factorises as p(x, ε) = p(x) N(ε), rising with S in expectation,
//! and equal to the f64 reference given the same ε.

mod common;
use common::*;
use mflow::data::Table;
use mflow::eval::Evaluator;
use mflow::kernels::rng::stream;
use mflow::model::{Flow, FlowConfig, Layer};
use mflow::reference::{flow as rf, marginal, rng};

const SEED: u64 = 1234;

fn eval(flow: &Flow, x: &Table, s: usize) -> Vec<f64> {
    let ev = Evaluator::new(gpu(), flow, s, kernels()).unwrap();
    ev.log_likelihood(gpu(), x, SEED).unwrap()
}

fn points(d: usize, n: usize, seed: u64) -> Table {
    Table::new(d, uniform(seed, n * d, 1.5))
}

#[test]
fn b0_estimate_is_the_exact_density() {
    let mut flow = Flow::new(FlowConfig { d: 3, b: 0, blocks: 2, depth: 2, hidden: 8, seed: 1, conv: None }).unwrap();
    flow.randomize(2, 0.7);
    let x = points(3, 37, 3);
    let want = rf::log_prob(&flow, &flow.params_f64(), &to_f64(&x.data), 37);
    let got: Vec<f32> = eval(&flow, &x, 50).iter().map(|&v| v as f32).collect();
    assert_close("B=0 log p(x)", &got, &want, 1e-4, 1e-4);
}

/// A flow whose every layer acts on the dimensions of x and ε separately, and on ε as the
/// identity: couplings are the identity (zero output layers), ActNorms are random on the
/// positions holding x and the identity on those holding ε.
fn factorised_flow(d: usize, b: usize) -> Flow {
    let mut flow = Flow::new(FlowConfig { d, b, blocks: 3, depth: 1, hidden: 4, seed: 7, conv: None }).unwrap();
    flow.randomize(8, 0.8);
    let q = d + b;
    let mut holds: Vec<usize> = (0..q).collect(); // holds[pos] = original dimension at pos
    let mut r = rng(11);
    for layer in flow.layers.clone() {
        match &layer {
            Layer::ActNorm { beta, a, .. } => {
                for (pos, &dim) in holds.iter().enumerate() {
                    if dim >= d {
                        flow.params[beta + pos] = 0.0;
                        flow.params[a + pos] = (1.0f64 - 1e-6).ln() as f32; // exp(a) + γ = 1
                    } else {
                        use rand::Rng;
                        flow.params[a + pos] = r.random_range(-0.5..0.5);
                    }
                }
            }
            Layer::Coupling { linears, .. } => {
                let out = linears.last().unwrap();
                flow.params[out.w..out.w + out.fan_in * out.fan_out].fill(0.0);
                flow.params[out.b..out.b + out.fan_out].fill(0.0);
            }
            Layer::Reverse | Layer::Shuffle { .. } => {
                let idx = layer.gather_indices(q).unwrap();
                holds = idx.iter().map(|&i| holds[i as usize]).collect();
            }
            _ => unreachable!("a dense flow"),
        }
    }
    flow
}

#[test]
fn factorised_flow_is_exact_for_every_s() {
    let (d, b) = (2, 3);
    let flow = factorised_flow(d, b);
    let x = points(d, 20, 4);
    // Exact: log p(x) = log p_T(x, ε) − log N(ε) for any ε; take ε = 0.
    let mut y = vec![0.0; 20 * (d + b)];
    for i in 0..20 {
        y[i * (d + b)..i * (d + b) + d].copy_from_slice(&to_f64(&x.row(i)));
    }
    let lp = rf::log_prob(&flow, &flow.params_f64(), &y, 20);
    let exact: Vec<f64> = lp.iter().map(|v| v - marginal::log_normal(&vec![0.0; b])).collect();
    for s in [1, 3, 64] {
        let got: Vec<f32> = eval(&flow, &x, s).iter().map(|&v| v as f32).collect();
        assert_close(&format!("factorised flow, S = {s}"), &got, &exact, 2e-4, 1e-4);
    }
}

#[test]
fn estimate_rises_with_s_in_expectation() {
    let mut flow = Flow::new(FlowConfig { d: 2, b: 2, blocks: 2, depth: 1, hidden: 8, seed: 5, conv: None }).unwrap();
    flow.randomize(6, 1.0);
    let x = points(2, 400, 9);
    let mean = |s| eval(&flow, &x, s).iter().sum::<f64>() / 400.0;
    let (m1, m8, m128) = (mean(1), mean(8), mean(128));
    assert!(m1 < m8 && m8 < m128, "means by S: 1 → {m1}, 8 → {m8}, 128 → {m128}");
}

#[test]
fn gpu_estimate_matches_reference_with_the_same_eps() {
    let (d, b, s, n) = (2, 2, 6, 9);
    let mut flow = Flow::new(FlowConfig { d, b, blocks: 2, depth: 2, hidden: 8, seed: 3, conv: None }).unwrap();
    flow.randomize(4, 0.8);
    let x = points(d, n, 10);
    // One chunk: step t = 1, ε of row p·S + k at indices (p·S + k)·B + j.
    let eps: Vec<f64> = (0..n * s * b).map(|i| rng::normal_at(SEED, 1, stream::EVAL_EPS, i as u32)).collect();
    let want = marginal::marginal_log_likelihood(&flow, &flow.params_f64(), &to_f64(&x.data), &eps, n, s);
    let got: Vec<f32> = eval(&flow, &x, s).iter().map(|&v| v as f32).collect();
    assert_close("marginal log-likelihood", &got, &want, 2e-4, 1e-4);
}

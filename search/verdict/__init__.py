"""The PSNR verdict: will a candidate keep the floor after full training?

calibration: the predictor (proxy run -> predicted full-training PSNR with an 80% interval -> verdict);
rungs: the promotion ladder (the training budget of each rung);
known_quality: the networks whose full-training quality is known (references, shipped and kit points);
measurement_cache: their proxy measurements, cached per machine; fidelity: how right the verdicts are.
It may import data, editions, evaluators, spaces and train_proxy; nothing of search outside search.verdict,
and nothing of plots or files beyond its own cache and shipped points.
"""

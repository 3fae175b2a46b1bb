"""Other frameworks' names for trainc's: what a user coming from Keras, PyTorch, scikit-learn, Ludwig or
Lightning types, and what it is called here. Did-you-mean reads this table before it measures edit
distance (`binary_crossentropy` is Keras' name for `bce`, not a misspelling of `cross_entropy`).

Each table is (whose name, what kind of name, {their name: trainc's name}); the kind is a registry's
word (`loss`, `layer`, ...), `unit`, `device`, `precision`, `option` (a bare-word setting) or `key` (a
section key or an argument). Every target exists in the catalogue (tests/test_aliases.py checks it).
Names are matched ignoring case, so `Adam` and `adam` need no second line.
"""

from __future__ import annotations

TABLES = (
    ("Keras", "loss", {
        "binary_crossentropy": "bce", "categorical_crossentropy": "cross_entropy",
        "sparse_categorical_crossentropy": "cross_entropy", "mean_squared_error": "mse",
        "mean_absolute_error": "mae", "huber_loss": "huber", "kld": "kl_div", "kullback_leibler_divergence": "kl_div",
        "squared_hinge": "hinge", "categorical_hinge": "hinge", "BinaryCrossentropy": "bce",
        "CategoricalCrossentropy": "cross_entropy", "SparseCategoricalCrossentropy": "cross_entropy",
        "MeanSquaredError": "mse", "MeanAbsoluteError": "mae", "KLDivergence": "kl_div"}),
    ("PyTorch", "loss", {
        "BCEWithLogitsLoss": "bce", "BCELoss": "bce", "binary_cross_entropy_with_logits": "bce",
        "binary_cross_entropy": "bce", "CrossEntropyLoss": "cross_entropy", "NLLLoss": "cross_entropy",
        "nll_loss": "cross_entropy", "MSELoss": "mse", "mse_loss": "mse", "L1Loss": "mae", "l1_loss": "mae",
        "HuberLoss": "huber", "SmoothL1Loss": "huber", "smooth_l1_loss": "huber", "huber_loss": "huber",
        "KLDivLoss": "kl_div", "MultiMarginLoss": "hinge", "HingeEmbeddingLoss": "hinge",
        "TripletMarginLoss": "triplet", "triplet_margin_loss": "triplet", "CosineEmbeddingLoss": "contrastive"}),
    ("scikit-learn", "loss", {"log_loss": "cross_entropy", "squared_error": "mse", "absolute_error": "mae",
                              "squared_loss": "mse", "hinge_loss": "hinge", "logloss": "cross_entropy"}),
    ("Ludwig", "loss", {"softmax_cross_entropy": "cross_entropy", "sigmoid_cross_entropy": "bce",
                        "binary_weighted_cross_entropy": "bce", "bce_with_logits": "bce", "nll": "cross_entropy",
                        "categorical_cross_entropy": "cross_entropy", "kl_divergence": "kl_div", "kldiv": "kl_div"}),
    ("Keras and PyTorch", "optimizer", {
        "Adam": "adam", "AdamW": "adamw", "SGD": "sgd", "RMSprop": "rmsprop", "Adagrad": "adagrad", "Lamb": "lamb"}),
    ("PyTorch", "optimizer", {"rms_prop": "rmsprop", "adam_w": "adamw", "AdamWeightDecay": "adamw"}),
    ("PyTorch", "schedule", {
        "StepLR": "step", "MultiStepLR": "multistep", "ExponentialLR": "exponential",
        "CosineAnnealingLR": "cosine", "CosineAnnealingWarmRestarts": "cosine_restarts", "OneCycleLR": "one_cycle",
        "ReduceLROnPlateau": "plateau", "LinearLR": "warmup", "CyclicLR": "cyclic", "PolynomialLR": "polynomial",
        "ConstantLR": "constant"}),
    ("Keras", "schedule", {
        "ExponentialDecay": "exponential", "CosineDecay": "cosine", "CosineDecayRestarts": "cosine_restarts",
        "PiecewiseConstantDecay": "multistep", "PolynomialDecay": "polynomial", "ReduceLROnPlateau": "plateau"}),
    ("Hugging Face", "schedule", {
        "linear_warmup": "warmup", "warmup_linear": "warmup", "linear_schedule_with_warmup": "warmup",
        "get_linear_schedule_with_warmup": "warmup", "cosine_with_restarts": "cosine_restarts",
        "LinearWarmupCosineAnnealingLR": "warmup", "onecycle": "one_cycle", "cosine_annealing": "cosine",
        "linear": "polynomial", "cosine_decay": "cosine", "exponential_decay": "exponential", "step_decay": "step",
        "reduce_on_plateau": "plateau", "reduce_lr_on_plateau": "plateau", "cyclical": "cyclic"}),
    ("Keras and Lightning", "stopping rule", {"EarlyStopping": "plateau", "early_stopping": "plateau"}),
    ("Keras", "initialiser", {
        "he_normal": "he", "glorot_uniform": "glorot", "HeNormal": "he", "HeUniform": "he_uniform",
        "GlorotUniform": "glorot", "GlorotNormal": "glorot_normal", "random_normal": "normal",
        "random_uniform": "uniform", "RandomNormal": "normal", "RandomUniform": "uniform", "Orthogonal": "orthogonal",
        "Zeros": "zeros", "Ones": "ones"}),
    ("PyTorch", "initialiser", {
        "kaiming_normal": "kaiming", "kaiming_normal_": "kaiming", "kaiming_uniform_": "kaiming_uniform",
        "xavier_uniform": "xavier", "xavier_uniform_": "xavier", "xavier_normal_": "xavier_normal",
        "normal_": "normal", "uniform_": "uniform", "orthogonal_": "orthogonal", "zeros_": "zeros",
        "ones_": "ones"}),
    ("Keras", "metric", {
        "acc": "accuracy", "categorical_accuracy": "accuracy", "sparse_categorical_accuracy": "accuracy",
        "binary_accuracy": "accuracy", "top_k_categorical_accuracy": "top_k",
        "sparse_top_k_categorical_accuracy": "top_k", "AUC": "auc", "mean_absolute_error": "mae",
        "root_mean_squared_error": "rmse", "RootMeanSquaredError": "rmse", "F1Score": "f1", "R2Score": "r2"}),
    ("scikit-learn", "metric", {
        "f1_score": "f1", "roc_auc": "auc", "roc_auc_score": "auc", "accuracy_score": "accuracy",
        "precision_score": "precision", "recall_score": "recall", "r2_score": "r2", "confusion_matrix": "confusion",
        "top_k_accuracy_score": "top_k", "neg_root_mean_squared_error": "rmse", "neg_mean_absolute_error": "mae"}),
    ("Lightning", "metric", {"AUROC": "auc", "MeanAbsoluteError": "mae", "Accuracy": "accuracy", "F1": "f1"}),
    ("Ludwig", "metric", {"hits_at_k": "top_k", "mean_absolute_error": "mae", "root_mean_squared_error": "rmse"}),
    ("Keras", "layer", {
        "Dense": "dense", "Conv2D": "conv2d", "Conv1D": "conv1d", "MaxPooling2D": "maxpool", "MaxPool2D": "maxpool",
        "MaxPooling1D": "maxpool", "AveragePooling2D": "avgpool", "GlobalAveragePooling2D": "global_avgpool",
        "GlobalAveragePooling1D": "global_avgpool", "GlobalMaxPooling2D": "global_maxpool",
        "BatchNormalization": "batchnorm", "LayerNormalization": "layernorm", "GroupNormalization": "groupnorm",
        "SimpleRNN": "rnn", "MultiHeadAttention": "attention", "Reshape": "reshape", "Concatenate": "concat",
        "Add": "add"}),
    ("PyTorch", "layer", {
        "Linear": "dense", "Conv2d": "conv2d", "Conv1d": "conv1d", "MaxPool2d": "maxpool", "MaxPool1d": "maxpool",
        "AvgPool2d": "avgpool", "AdaptiveAvgPool2d": "global_avgpool", "AdaptiveMaxPool2d": "global_maxpool",
        "BatchNorm1d": "batchnorm", "BatchNorm2d": "batchnorm", "batch_norm": "batchnorm", "LayerNorm": "layernorm",
        "layer_norm": "layernorm", "GroupNorm": "groupnorm", "RNN": "rnn", "TransformerEncoderLayer": "transformer",
        "TransformerEncoder": "transformer", "cat": "concat"}),
    ("Keras and PyTorch", "layer", {
        "Dropout": "dropout", "LSTM": "lstm", "GRU": "gru", "Embedding": "embedding", "Flatten": "flatten",
        "ReLU": "relu", "LeakyReLU": "leaky_relu", "GELU": "gelu", "Sigmoid": "sigmoid", "Tanh": "tanh",
        "Softmax": "softmax"}),
    ("Ludwig", "layer", {"fc": "dense", "fc_layers": "dense", "fully_connected": "dense"}),
    ("Lightning and PyTorch", "unit", {
        "iters": "steps", "iter": "steps", "iterations": "steps", "iteration": "steps", "it": "steps",
        "updates": "steps", "batches": "steps", "global_steps": "steps", "ep": "epochs", "hr": "h", "hrs": "hours"}),
    ("Lightning and PyTorch", "device", {
        "gpu": "cuda", "gpus": "cuda", "cuda:0": "cuda", "cuda:1": "cuda", "mps": "metal", "apple": "metal",
        "cpu:0": "cpu"}),
    ("Lightning and PyTorch", "precision", {
        "fp32": "f32", "float32": "f32", "32": "f32", "32-true": "f32", "fp16": "f16", "float16": "f16",
        "half": "f16", "16": "f16", "16-mixed": "f16", "amp": "f16", "mixed": "f16", "bfloat16": "bf16",
        "bf16-mixed": "bf16"}),
    ("scikit-learn and Ludwig", "option", {
        "StandardScaler": "standard", "zscore": "standard", "z-score": "standard", "MinMaxScaler": "minmax",
        "min_max": "minmax", "standardize": "standard", "z_score": "standard", "min-max": "minmax",
        "binary": "classification", "category": "classification", "multiclass": "classification",
        "number": "regression", "numerical": "regression"}),
    ("Keras, Lightning and Ludwig", "key", {
        "batch_size": "batch", "epochs": "max", "max_epochs": "max", "num_epochs": "max", "max_steps": "max",
        "max_iter": "max", "learning_rate": "lr", "label_smoothing": "smoothing", "random_state": "seed",
        "random_seed": "seed", "gradient_clip_val": "clip_grad_norm", "clipnorm": "clip_grad_norm",
        "clipvalue": "clip_grad_value", "accumulate_grad_batches": "accumulate",
        "gradient_accumulation_steps": "accumulate", "early_stopping": "early", "accelerator": "device",
        "kernel_initializer": "init", "kernel_size": "kernel", "out_channels": "filters",
        "every_n_epochs": "every", "beta_1": "b1", "beta_2": "b2", "epsilon": "eps", "rate": "p",
        "num_embeddings": "vocab", "embedding_dim": "dim", "output_dim": "dim", "input_dim": "vocab",
        "num_heads": "heads", "pool_size": "size", "strides": "stride", "negative_slope": "slope",
        "step_size": "every", "T_max": "length", "T_0": "period", "T_mult": "mult", "eta_min": "to",
        "label": "target", "label_column": "target", "target_column": "target", "columns": "features",
        "feature_columns": "features", "input_features": "features", "val_split": "split",
        "validation_split": "split", "max_time": "budget", "time_limit": "budget", "timeout": "budget",
        "every_n_train_steps": "every", "save_every": "every", "keep_last": "last", "manual_seed": "seed",
        "devices": "device", "gpus": "device", "dtype": "precision", "mixed_precision": "precision",
        "l2_regularization": "l2", "l1_regularization": "l1", "max_grad_norm": "clip_grad_norm",
        "grad_clip": "clip_grad_norm", "clipglobalnorm": "clip_grad_norm", "rho": "alpha", "decay_rate": "gamma",
        "decay_steps": "every", "warmup_steps": "length", "num_warmup_steps": "length", "warmup_epochs": "length",
        "out_features": "units", "hidden_size": "units", "num_units": "units", "use_bias": "bias",
        "dilation_rate": "dilation", "nhead": "heads", "dim_feedforward": "ff", "is_causal": "causal",
        "vocab_size": "vocab", "restore_best_weights": "restore_best"}),
)


def _index() -> dict[str, list[tuple[str, str, str]]]:
    out: dict[str, list[tuple[str, str, str]]] = {}
    for whose, kind, names in TABLES:
        for name, target in names.items():
            out.setdefault(name.lower(), []).append((whose, kind, target))
    return out


ALIASES = _index()  # their name, lower-cased -> [(whose name, kind, trainc's name), ...]


def alias(word: str, choices) -> tuple[str, str] | None:
    """(whose name `word` is, trainc's name for it) when the alias table has one among `choices`.

    A dotted word (`val.acc`, `nn.Linear`) looks up its last part: the result keeps the prefix when the
    choices are dotted (`val.accuracy`) and drops it otherwise (`dense`)."""
    head, _, last = word.rpartition(".")
    for whose, _kind, target in ALIASES.get(last.lower(), ()):
        for name in (f"{head}.{target}" if head else target, target):
            if name in choices and name != word:
                return whose, name
    return None

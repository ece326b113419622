"""Classification aux-ops: accuracy and the probability/label pairs that AUC metrics consume.

Classifiers output logits by default (`final_activation: "linear"`), hence the
sigmoid/softmax switches. A multi-task model may return a list of heads (one tensor
each, with a list of labels); `ComputeMulticlass*` handle both forms.
"""

from __future__ import annotations

from typing import Any

import torch

from ai4med.common.build_ctx import BuildContext
from ai4med.components.aux_ops.aux_op import AuxiliaryOperation


def _indices(label: torch.Tensor, n_classes: int, batch: int) -> torch.Tensor:
    """Class indices from (N,), (N, 1) or one-hot (N, C, ...) labels."""
    if label.ndim >= 2 and label.shape[1] == n_classes and n_classes > 1:
        return label.argmax(1)
    idx = label.reshape(batch, *label.shape[2:]) if label.ndim >= 2 and label.shape[1] == 1 else label
    return idx.round().long() if idx.is_floating_point() else idx.long()


def _accuracy(probs: torch.Tensor, label: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Binary (one channel, thresholded) or multi-class (argmax) accuracy over all cases/voxels."""
    label = torch.as_tensor(label, device=probs.device)
    if probs.ndim == 1 or probs.shape[1] == 1:
        pred = (probs > threshold).float().reshape(-1)
        return (pred == (label.float().reshape(-1) > 0.5).float()).float().mean()
    pred = probs.argmax(1)
    return (pred == _indices(label, probs.shape[1], probs.shape[0]).reshape(pred.shape)).float().mean()


def _head_probs(logits: torch.Tensor, use_sigmoid_for_binary: bool, use_softmax_for_multiclass: bool) -> torch.Tensor:
    x = torch.as_tensor(logits).float()
    if x.ndim == 1 or x.shape[1] == 1:
        return torch.sigmoid(x) if use_sigmoid_for_binary else x
    return torch.softmax(x, 1) if use_softmax_for_multiclass else x


def _heads(predictions: Any, labels: Any) -> tuple[list[torch.Tensor], list[Any]]:
    if isinstance(predictions, (list, tuple)):
        if not isinstance(labels, (list, tuple)) or len(labels) != len(predictions):
            raise ValueError("a list of prediction heads needs a list of labels of the same length")
        return list(predictions), list(labels)
    return [predictions], [labels]


class ComputeAccuracy(AuxiliaryOperation):
    """`{tag: accuracy}`: argmax vs label for several channels, `> 0.5` for one channel.

    Args:
        tag: output name.
        use_sigmoid: apply sigmoid to the predictions first (single-channel logits).
    """

    def __init__(self, tag: str, use_sigmoid: bool = False, do_summary: bool = True, do_print: bool = True) -> None:
        super().__init__(do_summary, do_print)
        self.tag = tag
        self.use_sigmoid = use_sigmoid

    def get_output_tensors(self, predictions: Any, label: Any, build_ctx: BuildContext) -> dict[str, Any]:
        p = torch.as_tensor(predictions).float()
        if self.use_sigmoid:
            p = torch.sigmoid(p)
        return {self.tag: _accuracy(p, label)}


class ComputeBinaryPreds(AuxiliaryOperation):
    """Positive-class probabilities (N,) and labels (N,) of a binary classifier, for `ComputeAUC`.

    One output channel: sigmoid of the logit; two channels: softmax probability of class 1.
    """

    def __init__(self, binary_preds_name: str = "binary_preds", binary_labels_name: str = "binary_labels",
                 do_summary: bool = False, do_print: bool = False) -> None:
        super().__init__(do_summary, do_print)
        self.binary_preds_name = binary_preds_name
        self.binary_labels_name = binary_labels_name

    def get_output_tensors(self, predictions: Any, label: Any, build_ctx: BuildContext) -> dict[str, Any]:
        x = torch.as_tensor(predictions).float()
        n = x.shape[0]
        if x.ndim == 1 or x.shape[1] == 1:
            probs = torch.sigmoid(x.reshape(n))
        elif x.shape[1] == 2:
            probs = torch.softmax(x.reshape(n, 2), 1)[:, 1]
        else:
            raise ValueError(f"binary predictions need 1 or 2 channels, got shape {tuple(x.shape)}")
        lab = torch.as_tensor(label)
        lab = _indices(lab, 2, n).reshape(n).float() if lab.ndim == 2 and lab.shape[1] == 2 else lab.reshape(n).float()
        return {self.binary_preds_name: probs, self.binary_labels_name: lab}


class ComputeMulticlassPreds(AuxiliaryOperation):
    """Probabilities and labels of a (multi-head) classifier, for AUC metrics.

    Single-channel heads get sigmoid (`use_sigmoid_for_binary`), multi-channel heads
    softmax (`use_softmax_for_multiclass`). A tensor in gives tensors out; a list of
    heads gives lists.
    """

    def __init__(self, preds_name: str = "preds", labels_name: str = "labels", use_sigmoid_for_binary: bool = True,
                 use_softmax_for_multiclass: bool = True, do_summary: bool = False, do_print: bool = False) -> None:
        super().__init__(do_summary, do_print)
        self.preds_name = preds_name
        self.labels_name = labels_name
        self.use_sigmoid_for_binary = use_sigmoid_for_binary
        self.use_softmax_for_multiclass = use_softmax_for_multiclass

    def get_output_tensors(self, predictions: Any, labels: Any, build_ctx: BuildContext | None = None) -> dict:
        heads, labs = _heads(predictions, labels)
        probs = [_head_probs(h, self.use_sigmoid_for_binary, self.use_softmax_for_multiclass) for h in heads]
        if isinstance(predictions, (list, tuple)):
            return {self.preds_name: probs, self.labels_name: [torch.as_tensor(x) for x in labs]}
        return {self.preds_name: probs[0], self.labels_name: torch.as_tensor(labels)}


class ComputeMulticlassAccuracy(AuxiliaryOperation):
    """`{tag: accuracy}` averaged over the heads of a (multi-head) classifier.

    Binary heads are thresholded at 0.5 after the optional sigmoid, multi-class heads
    argmaxed. With `use_sigmoid_for_accuracy` every channel is an independent binary
    decision (multi-label): accuracy = mean over channels of `(sigmoid(x) > 0.5) == label`.
    """

    def __init__(self, tag: str, use_sigmoid_for_binary: bool = True, use_softmax_for_multiclass: bool = True,
                 use_sigmoid_for_accuracy: bool = False, do_summary: bool = True, do_print: bool = True) -> None:
        super().__init__(do_summary, do_print)
        self.tag = tag
        self.use_sigmoid_for_binary = use_sigmoid_for_binary
        self.use_softmax_for_multiclass = use_softmax_for_multiclass
        self.use_sigmoid_for_accuracy = use_sigmoid_for_accuracy

    def get_output_tensors(self, predictions: Any, labels: Any, build_ctx: BuildContext | None = None) -> dict:
        heads, labs = _heads(predictions, labels)
        accs = []
        for head, lab in zip(heads, labs):
            x = torch.as_tensor(head).float()
            if self.use_sigmoid_for_accuracy:
                t = torch.as_tensor(lab, device=x.device).float().reshape(x.shape)
                accs.append(((torch.sigmoid(x) > 0.5).float() == (t > 0.5).float()).float().mean())
            else:
                accs.append(_accuracy(_head_probs(x, self.use_sigmoid_for_binary, self.use_softmax_for_multiclass), lab))
        return {self.tag: torch.stack(accs).mean()}

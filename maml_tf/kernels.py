"""The fast, twice-differentiable TensorFlow kernels behind `maml_tf.layers`: batch norm, patches."""

from typing import NamedTuple, Optional

import tensorflow as tf


class ConvPatches(NamedTuple):
    """A convolution's output written as a MatMul: output = columnsᵀ @ kernel (+ bias)."""

    columns: tf.Tensor  # [kh·kw·C, N·H'·W'] image patches, in the kernel's row order
    kernel: tf.Tensor  # [kh·kw·C, F]
    bias: Optional[tf.Tensor]  # [F], or None


def batch_norm_train(x, beta, epsilon: float, axes):
    """(x − μ)·r + β with the batch's μ, σ² over `axes` and r = (σ² + ε)^−½, differentiable twice.

    Both derivatives are closed forms, so the second-order meta-gradient through a batch norm
    costs ~20 passes over the activations instead of the ~60 of autodiff through its moments.
    With x̂ = (x − μ)·r, m(·) the mean over `axes` and P(w) = w − m(w) − x̂·m(w·x̂) (symmetric):
      VJP of y at g:                  ∂x = r·P(g),  ∂β = Σ g
      VJP of ∂x = r·P(g) at u:        ∂g = r·P(u)
                                      ∂x = −r²·(b·u + c·g − b·m(u) − c·m(g) + x̂·(m(u·P(g)) − 2bc)),
                                      b = m(g·x̂), c = m(u·x̂)
    (the x-derivative counts r's and x̂'s dependence on x; tests/library/test_kernel_paths.py
    holds it to the autodiff reference at 1e-9 in float64). A third derivative is not provided.
    """
    mean_ = lambda t: tf.reduce_mean(t, axes, keepdims=True)

    @tf.custom_gradient
    def forward(x, beta):
        mu = mean_(x)
        r = tf.math.rsqrt(mean_(tf.math.squared_difference(x, mu)) + epsilon)
        y = x * r + (beta - mu * r)

        @tf.custom_gradient
        def backward(x, g):  # r·P(g), written without materialising x̂ = (x − μ)·r
            a = mean_(g)
            b = r * (mean_(g * x) - mu * a)  # m(g·x̂)
            dx = r * g - (r * r * b) * x + r * (r * b * mu - a)

            def backward_grad(u):
                ub = mean_(u)
                c = r * (mean_(u * x) - mu * ub)  # m(u·x̂)
                k = mean_(u * dx) / r - 2.0 * b * c  # m(u·P(g)) − 2bc
                rr = r * r
                grad_g = r * u - (rr * c) * x + r * (r * c * mu - ub)
                grad_x = ((-rr * b) * u + (-rr * c) * g + (-rr * r * k) * x
                          + rr * (b * ub + c * a + r * k * mu))
                return grad_x, grad_g

            return dx, backward_grad

        def grad(g):
            return backward(x, g), tf.reduce_sum(g, axes)

        return y, grad

    return forward(x, beta)


def folded_batch_norm_train(conv: ConvPatches, beta, epsilon: float):
    """(y [N·H'·W', F], batch mean [F], batch variance [F]): batch norm of a patch convolution.

    The convolution's output is linear in its patches, so its batch moments follow from theirs:
    with P̄ the patches' mean and Σ their [D, D] covariance, μ = P̄ᵀK + b and σ² = diag(KᵀΣK),
    and the normalised output is (P − P̄)ᵀ @ (K·r) + β: one MatMul. Every derivative, first and
    second, is then a MatMul over the maps or a small op on [D, F] matrices, instead of the ~20
    elementwise passes of `batch_norm_train` over the largest maps of the network (the first
    block's). Autodiff gives them exactly; the bias cancels, as in any batch norm.
    """
    center = tf.reduce_mean(conv.columns, 1, keepdims=True)  # [D, 1]
    centred = conv.columns - center  # [D, M]; the images' patches: a constant of the meta-step
    count = tf.cast(tf.shape(centred)[1], centred.dtype)
    covariance = tf.matmul(centred, centred, transpose_b=True) / count  # [D, D]
    variance = tf.reduce_sum(conv.kernel * tf.matmul(covariance, conv.kernel), 0)  # [F]
    scale = tf.math.rsqrt(variance + epsilon)
    mean = tf.matmul(center, conv.kernel, transpose_a=True)[0]
    if conv.bias is not None:
        mean = mean + conv.bias
        # The bias stays connected to the output with its true gradient, 0, rather than none
        # (tape.gradient would give None and Keras' optimizers warn about the variable).
        beta = beta + 0.0 * conv.bias
    y = tf.matmul(centred, conv.kernel * scale, transpose_a=True) + beta
    return y, mean, variance


def patch_columns(x, kernel_size, strides, padding: str):
    """([kh·kw·C, N·H'·W'] patches of an NHWC `x`, in the kernel's row order (i, j, c), H', W').

    Built from kh·kw strided slices of the padded image (channels first) stacked on a new first
    axis, each a contiguous copy: measured ~4 ms per 100-image call for tf.image.extract_patches
    under load. Padding as TensorFlow's convolution: "same" puts the odd extra row/column at
    the end.
    """
    pads, sizes = [], []
    for size, k, stride in zip(x.shape[1:3], kernel_size, strides):
        if padding == "same":
            out = -(-size // stride)
            total = max((out - 1) * stride + k - size, 0)
            pads.append([total // 2, total - total // 2])
        else:
            out = -(-(size - k + 1) // stride)
            pads.append([0, 0])
        sizes.append(out)
    channels = x.shape[-1]
    x = tf.transpose(x, [3, 0, 1, 2]) if channels > 1 else x[..., 0][None]
    x = tf.pad(x, [[0, 0], [0, 0], *pads])  # [C, N, H, W]
    (kh, kw), (sh, sw), (oh, ow) = kernel_size, strides, sizes
    columns = [tf.reshape(x[:, :, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw],
                          [channels, -1])
               for i in range(kh) for j in range(kw)]
    return tf.reshape(tf.stack(columns), [kh * kw * channels, -1]), oh, ow

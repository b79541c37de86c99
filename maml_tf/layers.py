"""Keras layers for meta-learning: twice-differentiable norms and a patch-MatMul convolution."""

import keras
import tensorflow as tf

from maml_tf import kernels

# The attribute by which a patch convolution's output tells the batch norm it feeds how it was
# made (a `kernels.ConvPatches`), so the pair folds into one MatMul. Any other op in between
# makes a new tensor without it, and the two layers then run apart, unchanged.
PATCHES_ATTR = "_maml_tf_patches"


@keras.saving.register_keras_serializable(package="maml_tf")
class BatchNorm(keras.layers.BatchNormalization):
    """Batch norm whose batch moments are differentiable twice, for the second-order meta-gradient.

    Keras' TensorFlow backend takes them from tf.nn.moments, which stops the gradient through
    the mean inside the variance: first derivatives stay exact, but differentiating the inner
    gradient again loses the mean's dependence on the input (found by a finite-difference test).
    """

    # The training-mode output through `batch_norm_train`'s hand-derived first and second
    # derivatives (the same mathematics in ~3x fewer passes over the activations than autodiff
    # of the composition); False: Keras' own call on the moments below (the reference path).
    closed_form_gradients = True
    # Fed by a patch convolution (`Conv2D` below), the pair becomes one MatMul whose moments come
    # from the patches' (`kernels.folded_batch_norm_train`); False: the two run apart.
    fold_patch_conv = True

    def _moments(self, inputs, mask):
        if mask is not None:
            return super()._moments(inputs, mask)
        axes = self._reduction_axes
        mean = keras.ops.mean(inputs, axis=axes, keepdims=True)
        variance = keras.ops.mean(keras.ops.square(inputs - mean), axis=axes)
        return keras.ops.squeeze(mean, axis=axes), variance

    def call(self, inputs, training=None, mask=None):
        fast = (self.closed_form_gradients and training and self.trainable and mask is None
                and not self.scale and self.center and not self.renorm
                and keras.backend.backend() == "tensorflow")
        if not fast:
            return super().call(inputs, training=training, mask=mask)
        conv = getattr(inputs, PATCHES_ATTR, None)
        if (self.fold_patch_conv and conv is not None and inputs.dtype in (tf.float32, tf.float64)
                and list(self._reduction_axes) == list(range(len(inputs.shape) - 1))):
            out, mean, variance = kernels.folded_batch_norm_train(
                conv, tf.cast(self.beta, inputs.dtype), self.epsilon)
            self._track(tf.stop_gradient(mean), tf.stop_gradient(variance))
            # A static shape: tf.shape(inputs) would make the unfolded convolution run.
            return tf.cast(tf.reshape(out, [-1, *inputs.shape[1:]]), self.compute_dtype)
        x = tf.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        self._track(*self._moments(tf.stop_gradient(x), None))
        out = kernels.batch_norm_train(x, tf.cast(self.beta, x.dtype), self.epsilon,
                                       self._reduction_axes)
        return tf.cast(out, self.compute_dtype)

    def _track(self, mean, variance):
        # Moving statistics, as Keras keeps them (no gradient; pruned when nobody reads them,
        # as in Learner, whose predictions always use batch statistics).
        self.moving_mean.assign(self.moving_mean * self.momentum
                                + tf.cast(mean, self.moving_mean.dtype) * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum
                                    + tf.cast(variance, self.moving_variance.dtype)
                                    * (1.0 - self.momentum))


@keras.saving.register_keras_serializable(package="maml_tf")
class BatchStatsNorm(BatchNorm):
    """BatchNorm that normalises with the statistics of the batch it is given in every mode,
    `predict` included: the rule a meta-learned model was trained and evaluated with (as the
    original's), for a plain Keras model holding adapted weights (`maml_tf.load(...).adapt`)."""

    def call(self, inputs, training=None, mask=None):
        return super().call(inputs, training=True, mask=mask)


@keras.saving.register_keras_serializable(package="maml_tf")
class Conv2D(keras.layers.Conv2D):
    """Conv2D that runs an input of 1-3 channels (a first layer on images) as patches @ kernel.

    oneDNN's and Eigen's convolutions degenerate on a shallow input (a 9- or 27-long
    reduction): profiled on Omniglot 20-way 5-shot, the first layer's ops took ~9% of the
    second-order step for ~2% of its FLOPs. As image patches times a [kh·kw·C, filters] matrix,
    every pass of the first and second derivative is a MatMul (the same sums in another order),
    and a batch norm that follows folds into it (`BatchNorm.fold_patch_conv`). The patches'
    gradient (the image's) is never needed in meta-learning, which is what makes this cheap.
    """

    # False: Keras' own convolution for every input (the reference path).
    patch_matmul = True
    max_patch_channels = 3

    def call(self, inputs):
        if not (self.patch_matmul and inputs.shape[-1] is not None
                and inputs.shape[-1] <= self.max_patch_channels and None not in inputs.shape[1:3]
                and self.data_format == "channels_last" and tuple(self.dilation_rate) == (1, 1)
                and self.groups == 1 and keras.backend.backend() == "tensorflow"):
            return super().call(inputs)
        columns, height, width = kernels.patch_columns(inputs, self.kernel_size, self.strides,
                                                       self.padding)
        kernel = tf.reshape(self.kernel, [-1, self.filters])
        bias = tf.convert_to_tensor(self.bias) if self.use_bias else None
        out = tf.matmul(columns, kernel, transpose_a=True)
        out = tf.reshape(out if bias is None else out + bias, [-1, height, width, self.filters])
        if self.activation not in (None, keras.activations.linear):
            return self.activation(out)
        setattr(out, PATCHES_ATTR, kernels.ConvPatches(columns, kernel, bias))
        return out


@keras.saving.register_keras_serializable(package="maml_tf")
class LayerNorm(keras.layers.LayerNormalization):
    """Layer norm with twice-differentiable moments over any of its axes (Keras' come from
    tf.nn.moments; see BatchNorm). RMS scaling, which takes no mean, falls back to Keras' own."""

    def call(self, inputs):
        if self.rms_scaling:
            return super().call(inputs)
        axes = sorted(a % len(inputs.shape) for a in self.axis)
        mean = keras.ops.mean(inputs, axis=axes, keepdims=True)
        variance = keras.ops.mean(keras.ops.square(inputs - mean), axis=axes, keepdims=True)
        outputs = (inputs - mean) * keras.ops.rsqrt(variance + self.epsilon)
        # gamma and beta have the shape of the normalised axes: line them up with the inputs.
        shape = [inputs.shape[a] if a in axes else 1 for a in range(len(inputs.shape))]
        if self.gamma is not None:
            outputs = outputs * keras.ops.reshape(keras.ops.cast(self.gamma, outputs.dtype), shape)
        if self.beta is not None:
            outputs = outputs + keras.ops.reshape(keras.ops.cast(self.beta, outputs.dtype), shape)
        return keras.ops.cast(outputs, self.compute_dtype)


@keras.saving.register_keras_serializable(package="maml_tf")
class FirstOutputs(keras.layers.Layer):
    """The first `ways` outputs of a wider head: an N-way model adapted to a task of n < N classes."""

    def __init__(self, ways: int, **kwargs):
        super().__init__(**kwargs)
        self.ways = int(ways)

    def call(self, logits):
        return logits[..., :self.ways]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.ways)

    def get_config(self):
        return {**super().get_config(), "ways": self.ways}

/*
 * sampler_math.h — exp and log computed the same way on every platform.
 *
 * The sampler turns logits into probabilities with exp and reports logprobs with log. libm's
 * exp/log are only promised to be accurate to about one ulp, and glibc (native tests) and
 * wasi-libc (the sandboxed guest) are different code: in rare cases a last-bit difference
 * would move a cumulative sum across the random draw and change the chosen token. These two
 * functions use only IEEE-754 double +, -, *, / and bit manipulation, which are exactly
 * specified, so with floating-point contraction disabled (-ffp-contract=off, set in
 * meson.build) they return bit-identical results everywhere. Relative error is below 1e-15,
 * far more than sampling needs.
 */
#ifndef REALM_SAMPLER_MATH_H
#define REALM_SAMPLER_MATH_H

/* e^x. Returns 0 below about -745, +inf above about 709.78, NaN for NaN. */
double sampler_exp(double x);

/* Natural logarithm. Returns -inf for 0, NaN for negatives and NaN, +inf for +inf. */
double sampler_log(double x);

#endif /* REALM_SAMPLER_MATH_H */

/*
 * sampler_math.c — portable, bit-reproducible exp and log (see sampler_math.h for why).
 *
 * exp: Cody–Waite range reduction x = k·ln2 + r with |r| <= ln2/2 (ln2 split into a high part
 * with trailing zero bits, so k·ln2_hi is exact, and a low correction), then the Taylor series
 * of e^r to degree 14 in Horner form (coefficients 1/n!), then scaling by 2^k built directly in the exponent bits.
 *
 * log: x = m·2^e with m in [sqrt(1/2), sqrt(2)), log m = 2·atanh(s), s = (m-1)/(m+1), |s| <=
 * 0.172, summed as an odd series to s^23; then e·ln2 is added in two parts.
 */
#include "sampler_math.h"

#include <stdint.h>
#include <string.h>

static const double LN2_HI = 6.93147180369123816490e-01; /* ln 2, upper 32 bits of mantissa */
static const double LN2_LO = 1.90821492927058770002e-10; /* ln 2 - LN2_HI */
static const double INV_LN2 = 1.44269504088896338700e+00;
static const double EXP_COEF[15] = { /* 1/n!, rounded to nearest double */
    1.0, 1.0, 0.5,
    0.16666666666666666, 0.041666666666666664, 0.008333333333333333,
    0.001388888888888889, 0.0001984126984126984, 2.48015873015873e-05,
    2.7557319223985893e-06, 2.755731922398589e-07, 2.505210838544172e-08,
    2.08767569878681e-09, 1.6059043836821613e-10, 1.1470745597729725e-11,
};

static double bits_to_double(uint64_t b) {
  double d;
  memcpy(&d, &b, sizeof d);
  return d;
}

static uint64_t double_to_bits(double d) {
  uint64_t b;
  memcpy(&b, &d, sizeof b);
  return b;
}

/* 2^k for k in the normal exponent range [-1022, 1023]. */
static double pow2_normal(int k) {
  return bits_to_double((uint64_t)(k + 1023) << 52);
}

double sampler_exp(double x) {
  if (x != x) return x;                 /* NaN */
  if (x > 709.782712893384) return bits_to_double(0x7ff0000000000000ull); /* +inf */
  if (x < -745.1332191019412) return 0.0;
  double t = x * INV_LN2;
  int k = (int)(t >= 0 ? t + 0.5 : t - 0.5); /* round half away from zero; C truncates */
  double r = (x - (double)k * LN2_HI) - (double)k * LN2_LO;
  /* Taylor polynomial sum r^n / n!, n = 0..14, in Horner form (multiplications only: the
   * sampler calls this once per vocabulary entry, and division is slow). */
  double p = EXP_COEF[14];
  for (int n = 13; n >= 0; n--) p = p * r + EXP_COEF[n];
  if (k > 1023) return p * pow2_normal(k - 1) * 2.0;
  if (k < -1021) return p * pow2_normal(k + 1000) * pow2_normal(-1000);
  return p * pow2_normal(k);
}

double sampler_log(double x) {
  if (x != x || x < 0) return bits_to_double(0x7ff8000000000000ull); /* NaN */
  if (x == 0) return -bits_to_double(0x7ff0000000000000ull);          /* -inf */
  uint64_t b = double_to_bits(x);
  if ((b >> 52) == 0x7ff) return x; /* +inf */
  int e = 0;
  if ((b >> 52) == 0) { /* subnormal: scale into the normal range first */
    x *= 18014398509481984.0; /* 2^54 */
    b = double_to_bits(x);
    e = -54;
  }
  e += (int)(b >> 52) - 1023;
  double m = bits_to_double((b & 0x000fffffffffffffull) | 0x3ff0000000000000ull); /* [1,2) */
  if (m > 1.4142135623730951) { /* move to [sqrt(1/2), sqrt(2)) so |s| stays small */
    m *= 0.5;
    e += 1;
  }
  double s = (m - 1.0) / (m + 1.0);
  double s2 = s * s;
  double series = 0.0; /* 1 + s^2/3 + s^4/5 + ... + s^22/23, Horner from the top */
  for (int n = 23; n >= 3; n -= 2) series = (series + 1.0 / (double)n) * s2;
  double log_m = 2.0 * s * (1.0 + series);
  return (double)e * LN2_HI + ((double)e * LN2_LO + log_m);
}

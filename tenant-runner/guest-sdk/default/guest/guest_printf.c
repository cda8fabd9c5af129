/*
 * guest_printf.c — a small snprintf/vsnprintf for the wasm guest, replacing wasi-libc's.
 *
 * Why: wasi-libc's vsnprintf drags in its stdio exit path (__towrite -> __stdio_exit ->
 * stdout/stderr), which imports fd_write, fd_seek and fd_close from wasi_snapshot_preview1;
 * the sandbox refuses any import outside module "realm". The guest's libraries only format
 * error messages and byte-token names ("<0x%02X>"), so defining these two functions here makes
 * the linker take ours and never pull libc's stdio. It also saves about 40 KB of wasm.
 *
 * Supported: flags '-' '0' (and ' ' '+' '#' parsed, '+' honoured), width and precision as
 * numbers or '*', length modifiers hh h l ll z j t, conversions d i u x X c s p g f e %.
 * %g/%f/%e print 6 significant digits (or the precision) without the guarantee of correct
 * rounding in the last digit: this output is for humans reading error messages. Every other
 * conversion prints itself literally. The result is always NUL-terminated when size > 0 and
 * the return value is the length the full output would have had, as C requires.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct out {
  char *buf;
  size_t cap; /* bytes of buf usable for characters (size - 1) */
  size_t n;   /* characters produced so far (may exceed cap) */
};

static void put(struct out *o, char c) {
  if (o->n < o->cap) o->buf[o->n] = c;
  o->n++;
}

static void put_pad(struct out *o, char c, int count) {
  for (int i = 0; i < count; i++) put(o, c);
}

/* Writes s[0..len) padded to width. */
static void put_field(struct out *o, const char *s, size_t len, int width, int left, char pad) {
  int fill = width > (int)len ? width - (int)len : 0;
  if (!left) {
    /* zero padding goes after a sign */
    if (pad == '0' && len > 0 && (s[0] == '-' || s[0] == '+')) {
      put(o, s[0]);
      s++;
      len--;
    }
    put_pad(o, pad, fill);
  }
  for (size_t i = 0; i < len; i++) put(o, s[i]);
  if (left) put_pad(o, ' ', fill);
}

/* Unsigned v in base 10 or 16 into the END of tmp; returns the start. */
static char *utoa_rev(uint64_t v, unsigned base, int upper, char *end) {
  const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  char *p = end;
  do {
    *--p = digits[v % base];
    v /= base;
  } while (v);
  return p;
}

/* %e/%f/%g of a double, precision prec, into tmp (at least 64 bytes). Returns the length. */
static size_t format_double(double x, char conv, int prec, int plus, char *tmp) {
  size_t n = 0;
  if (x != x) {
    memcpy(tmp, "nan", 3);
    return 3;
  }
  if (x < 0 || (x == 0 && 1 / x < 0)) {
    tmp[n++] = '-';
    x = -x;
  } else if (plus) {
    tmp[n++] = '+';
  }
  if (x > 1.7976931348623157e308) {
    memcpy(tmp + n, "inf", 3);
    return n + 3;
  }
  if (prec < 0) prec = 6;
  if (prec > 17) prec = 17;
  int exp10 = 0;
  double m = x;
  if (m != 0) {
    while (m >= 10) { m /= 10; exp10++; }
    while (m < 1) { m *= 10; exp10--; }
  }
  int use_exp;
  int frac_digits;
  int trim = 0;
  if (conv == 'g') {
    int p = prec == 0 ? 1 : prec;
    use_exp = exp10 < -4 || exp10 >= p;
    frac_digits = use_exp ? p - 1 : p - 1 - exp10;
    trim = 1;
  } else {
    use_exp = conv == 'e';
    frac_digits = prec;
  }
  if (frac_digits < 0) frac_digits = 0;
  /* Digits: scale to an integer of the wanted digits and round once. */
  double scaled = use_exp ? m : x;
  double pow10 = 1;
  for (int i = 0; i < frac_digits; i++) pow10 *= 10;
  double r = scaled * pow10 + 0.5;
  if (r >= 1.8e19) { /* too large for the integer path: fall back to exponent form */
    use_exp = 1;
    scaled = m;
    r = scaled * pow10 + 0.5;
  }
  uint64_t whole = (uint64_t)r;
  if (use_exp && whole >= (uint64_t)(10 * pow10)) { /* rounding carried into a new digit */
    whole /= 10;
    exp10++;
  }
  char digits[32];
  char *end = digits + sizeof digits;
  char *d = utoa_rev(whole, 10, 0, end);
  size_t nd = (size_t)(end - d);
  /* integer part has nd - frac_digits digits (at least one, padded with zeros) */
  size_t int_digits = nd > (size_t)frac_digits ? nd - (size_t)frac_digits : 0;
  if (int_digits == 0) tmp[n++] = '0';
  for (size_t i = 0; i < int_digits; i++) tmp[n++] = d[i];
  if (frac_digits > 0) {
    size_t dot = n;
    tmp[n++] = '.';
    for (int i = 0; i < frac_digits - (int)(nd - int_digits); i++) tmp[n++] = '0';
    for (size_t i = int_digits; i < nd; i++) tmp[n++] = d[i];
    if (trim) {
      while (n > dot + 1 && tmp[n - 1] == '0') n--;
      if (n == dot + 1) n = dot;
    }
  }
  if (use_exp) {
    tmp[n++] = 'e';
    tmp[n++] = exp10 < 0 ? '-' : '+';
    int e = exp10 < 0 ? -exp10 : exp10;
    if (e >= 100) tmp[n++] = (char)('0' + e / 100);
    tmp[n++] = (char)('0' + e / 10 % 10);
    tmp[n++] = (char)('0' + e % 10);
  }
  return n;
}

int vsnprintf(char *restrict buf, size_t size, const char *restrict fmt, va_list ap) {
  struct out o = {buf, size ? size - 1 : 0, 0};
  for (const char *p = fmt; *p; p++) {
    if (*p != '%') {
      put(&o, *p);
      continue;
    }
    const char *spec = p++;
    int left = 0, zero = 0, plus = 0;
    for (;; p++) {
      if (*p == '-') left = 1;
      else if (*p == '0') zero = 1;
      else if (*p == '+') plus = 1;
      else if (*p == ' ' || *p == '#') continue;
      else break;
    }
    int width = 0, prec = -1;
    if (*p == '*') {
      width = va_arg(ap, int);
      if (width < 0) {
        left = 1;
        width = -width;
      }
      p++;
    } else {
      while (*p >= '0' && *p <= '9') width = width * 10 + (*p++ - '0');
    }
    if (*p == '.') {
      p++;
      prec = 0;
      if (*p == '*') {
        prec = va_arg(ap, int);
        p++;
      } else {
        while (*p >= '0' && *p <= '9') prec = prec * 10 + (*p++ - '0');
      }
    }
    int lng = 0; /* 0 int, 1 long, 2 long long, 3 size_t/ptrdiff, 4 intmax */
    while (*p == 'h') p++;
    if (*p == 'l') {
      lng = 1;
      if (*++p == 'l') {
        lng = 2;
        p++;
      }
    } else if (*p == 'z' || *p == 't') {
      lng = 3;
      p++;
    } else if (*p == 'j') {
      lng = 4;
      p++;
    }
    char tmp[72];
    char *end = tmp + sizeof tmp;
    char pad = zero && !left ? '0' : ' ';
    switch (*p) {
    case 'd': case 'i': {
      int64_t v = lng == 0 ? va_arg(ap, int) : lng == 1 ? va_arg(ap, long) : lng == 3 ? (int64_t)va_arg(ap, ptrdiff_t)
                : lng == 4 ? (int64_t)va_arg(ap, intmax_t) : va_arg(ap, long long);
      uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
      char *s = utoa_rev(mag, 10, 0, end);
      if (v < 0) *--s = '-';
      else if (plus) *--s = '+';
      put_field(&o, s, (size_t)(end - s), width, left, pad);
      break;
    }
    case 'u': case 'x': case 'X': {
      uint64_t v = lng == 0 ? va_arg(ap, unsigned) : lng == 1 ? va_arg(ap, unsigned long)
                 : lng == 3 ? (uint64_t)va_arg(ap, size_t) : lng == 4 ? (uint64_t)va_arg(ap, uintmax_t)
                 : va_arg(ap, unsigned long long);
      char *s = utoa_rev(v, *p == 'u' ? 10 : 16, *p == 'X', end);
      put_field(&o, s, (size_t)(end - s), width, left, pad);
      break;
    }
    case 'p': {
      uintptr_t v = (uintptr_t)va_arg(ap, void *);
      char *s = utoa_rev(v, 16, 0, end);
      *--s = 'x';
      *--s = '0';
      put_field(&o, s, (size_t)(end - s), width, left, ' ');
      break;
    }
    case 'c': {
      char c = (char)va_arg(ap, int);
      put_field(&o, &c, 1, width, left, ' ');
      break;
    }
    case 's': {
      const char *s = va_arg(ap, const char *);
      if (!s) s = "(null)";
      size_t len = prec >= 0 ? strnlen(s, (size_t)prec) : strlen(s);
      put_field(&o, s, len, width, left, ' ');
      break;
    }
    case 'g': case 'f': case 'e': {
      double v = va_arg(ap, double);
      size_t len = format_double(v, *p, prec, plus, tmp);
      put_field(&o, tmp, len, width, left, pad);
      break;
    }
    case '%':
      put(&o, '%');
      break;
    default: /* unknown or truncated conversion: print it as written */
      for (const char *q = spec; q <= p && *q; q++) put(&o, *q);
      if (!*p) p--;
      break;
    }
  }
  if (size) buf[o.n < o.cap ? o.n : o.cap] = '\0';
  return o.n > (size_t)INT32_MAX ? INT32_MAX : (int)o.n;
}

int snprintf(char *restrict buf, size_t size, const char *restrict fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, size, fmt, ap);
  va_end(ap);
  return n;
}

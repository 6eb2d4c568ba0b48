// Sentiment scoring of feedback text with a small word list (weights in
// the style of AFINN, -5..5). A negation word flips the next scored word.
// Pure functions, no I/O.
"use strict";

const LEXICON = {
  amazing: 4, awesome: 4, excellent: 3, fantastic: 4, great: 3, good: 3, love: 3, loved: 3, lovely: 3,
  happy: 3, glad: 3, perfect: 3, best: 3, brilliant: 4, friendly: 2, helpful: 2, fast: 2, quick: 2,
  easy: 2, nice: 3, recommend: 2, thanks: 2, thank: 2, pleased: 3, smooth: 2, solved: 2, fixed: 2,
  polite: 2, reliable: 2, like: 2, liked: 2, works: 1, fine: 2, ok: 1, okay: 1,
  bad: -3, terrible: -3, awful: -3, horrible: -3, worst: -3, hate: -3, hated: -3, angry: -3,
  slow: -2, broken: -2, broke: -2, crash: -2, crashes: -2, crashed: -2, bug: -2, buggy: -2, late: -2,
  rude: -2, useless: -2, disappointed: -2, disappointing: -2, annoying: -2, confusing: -2, poor: -2,
  refund: -2, wrong: -2, missing: -2, lost: -3, never: -1, problem: -2, problems: -2, issue: -1,
  issues: -1, unhappy: -2, waiting: -1, waited: -1, expensive: -2, cancel: -1, cancelled: -1, fail: -2,
  failed: -2, fails: -2, error: -2, errors: -2, frustrating: -2, frustrated: -2,
};

const NEGATIONS = new Set(["not", "no", "never", "dont", "don't", "isnt", "isn't", "wasnt", "wasn't", "didnt", "didn't", "cant", "can't", "won't", "hardly"]);

// PermanentError marks a record that can never be scored: it is
// dead-lettered with the message as reason, never retried.
class PermanentError extends Error {}

// score rates one feedback record's text: the sum of its words' weights
// (raw), that sum per word (score, comparable across lengths), and a label.
function score(text) {
  if (text === undefined || text === null) {
    throw new PermanentError("text missing: nothing to score");
  }
  if (typeof text !== "string") {
    throw new PermanentError(`text is ${Array.isArray(text) ? "an array" : "a " + typeof text}, want a string`);
  }
  const words = text.toLowerCase().match(/[a-z']+/g) || [];
  if (words.length === 0) {
    throw new PermanentError("text has no words to score");
  }
  let raw = 0;
  let negate = false;
  for (const w of words) {
    const weight = LEXICON[w.replace(/'/g, "")] ?? LEXICON[w];
    if (weight !== undefined) {
      raw += negate ? -weight : weight;
      negate = false;
    } else if (NEGATIONS.has(w)) {
      negate = true;
    }
  }
  const perWord = Math.round((raw / words.length) * 10000) / 10000;
  return { raw, score: perWord, sentiment: raw > 0 ? "positive" : raw < 0 ? "negative" : "neutral", words: words.length };
}

module.exports = { score, PermanentError, LEXICON };

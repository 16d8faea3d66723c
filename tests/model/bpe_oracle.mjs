// The reference for the byte-level BPE tokenizer: the npm package llama3-tokenizer-js (LLaMA-3's
// vocabulary and merges, and its own JavaScript encoder). Installed by launch/setup into
// tests/.npm; nothing of it is committed.
//
//   node bpe_oracle.mjs PACKAGE_DIR vocab OUT.json          writes a tokenizer.json with the
//        package's vocabulary, merges (in rank order), special tokens and the LLaMA-3 pre-tokeniser
//   node bpe_oracle.mjs PACKAGE_DIR encode IN.json OUT.json  IN: a JSON array of strings; OUT: the
//        package's token ids of each (no BOS, no EOS), and decode(ids) == string for each
//
// About encode: the package orders candidate merges by (merge priority + position / prompt length),
// where priorities of consecutive merges are 2 apart and the position counts bytes of one piece
// while the length counts UTF-16 units of the whole prompt. When a piece holds more than twice as
// many bytes as the prompt has units (a prompt of CJK letters only, say), the fraction exceeds 2
// and merges of neighbouring ranks may be applied out of order. Each string is therefore encoded followed by <|eot_id|> and
// a run of digits long enough to keep the fraction below 1: the special token splits the text
// first, so the string's own pieces and ids are unchanged, and the ids after <|eot_id|> are dropped.
import fs from 'fs';
import path from 'path';
import { pathToFileURL } from 'url';

const [pkgDir, mode, a, b] = process.argv.slice(2);
const mod = await import(pathToFileURL(path.join(pkgDir, 'node_modules/llama3-tokenizer-js/bundle/llama3-tokenizer-with-baked-data.js')).href);
const tok = mod.default;
const PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

if (mode === 'vocab') {
  const specialStart = tok.vocabById.findIndex(s => s === '<|begin_of_text|>');
  const vocab = {};
  const added = [];
  tok.vocabById.forEach((s, id) => {
    if (id >= specialStart) added.push({ id, content: s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    else vocab[s] = id;
  });
  const merges = [...tok.merges.entries()].sort((x, y) => x[1] - y[1]).map(e => e[0]);
  const out = {
    version: '1.0',
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: PATTERN }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
             fuse_unk: false, byte_fallback: false, ignore_merges: true, vocab, merges },
  };
  fs.writeFileSync(a, JSON.stringify(out));
  console.log(`vocabulary: ${Object.keys(vocab).length} tokens + ${added.length} special, ${merges.length} merges`);
} else if (mode === 'encode') {
  const strings = JSON.parse(fs.readFileSync(a, 'utf8'));
  const eot = tok.getSpecialTokenId('<|eot_id|>');
  const ids = strings.map(s => {
    const padded = s + '<|eot_id|>' + '0'.repeat(4 * s.length + 8);
    const all = tok.encode(padded, { bos: false, eos: false });
    const cut = all.indexOf(eot);
    const own = all.slice(0, cut);
    if (tok.decode(own) !== s) throw new Error('the package does not round-trip ' + JSON.stringify(s));
    return own;
  });
  fs.writeFileSync(b, JSON.stringify(ids));
  console.log(`encoded ${strings.length} strings`);
} else {
  console.error('usage: bpe_oracle.mjs PACKAGE_DIR vocab OUT.json | encode IN.json OUT.json');
  process.exit(2);
}

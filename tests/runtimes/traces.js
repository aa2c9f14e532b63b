// Prints real Node.js error stacks between ordinary log lines, then dies of an uncaught exception.
"use strict";

function parse(text) {
  const value = JSON.parse(text);
  return value.id.name;
}

function load(text) {
  try {
    return parse(text);
  } catch (err) {
    throw new Error("could not load " + text, { cause: err });
  }
}

console.error("2026-12-02T09:00:00.000Z info before the trace");
try {
  load("{}");
} catch (err) {
  console.error(err.stack);
}
console.error("2026-12-02T09:00:01.000Z info between traces");
try {
  load("not json");
} catch (err) {
  console.error(err);
}
console.error("2026-12-02T09:00:02.000Z info after the traces");
setTimeout(() => {
  load("[1]");
}, 1);

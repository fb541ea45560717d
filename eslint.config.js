// The rules and why each is on (or off) are in docs/lint.md; change both together.
import { defineConfig } from "eslint/config";
import tseslint from "typescript-eslint";

/** Rules that need no type information: they hold for every file, TypeScript or JavaScript. */
const everywhere = {
  eqeqeq: "error",
  "prefer-const": ["error", { ignoreReadBeforeAssign: true }],
  "no-async-promise-executor": "error",
  "no-unsafe-finally": "error",
  "no-unsafe-optional-chaining": "error",
  "no-constant-binary-expression": "error",
  "no-self-compare": "error",
  "no-cond-assign": "error",
  "no-dupe-else-if": "error",
  "no-useless-catch": "error",
  "no-empty": "error",
  "no-unused-private-class-members": "error",
};

/** Type-aware rules for promises and thrown errors, tests included. */
const promises = {
  "@typescript-eslint/no-floating-promises": "error",
  "@typescript-eslint/no-misused-promises": "error",
  "@typescript-eslint/await-thenable": ["error", { allowMixedPromiseArrays: true }],
  "@typescript-eslint/return-await": ["error", "error-handling-correctness-only"],
  "@typescript-eslint/only-throw-error": "error",
  "@typescript-eslint/prefer-promise-reject-errors": ["error", { allowThrowingAny: true, allowThrowingUnknown: true }],
};

/** Rules for every TypeScript file. */
const typescript = {
  ...everywhere,
  ...promises,
  "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
  "@typescript-eslint/no-unused-vars": ["error", { varsIgnorePattern: "^_", argsIgnorePattern: "^_", ignoreRestSiblings: true }],
  "@typescript-eslint/no-unnecessary-type-assertion": "error",
  "@typescript-eslint/no-deprecated": "error",
  "@typescript-eslint/no-for-in-array": "error",
  "@typescript-eslint/no-array-delete": "error",
  "@typescript-eslint/no-implied-eval": "error",
};

/** Rules for shipped code only: tests read JSON and talk to libraries loosely on purpose. */
const library = {
  "@typescript-eslint/switch-exhaustiveness-check": ["error", { considerDefaultExhaustiveForUnions: true }],
  "@typescript-eslint/restrict-template-expressions": "error",
  "@typescript-eslint/restrict-plus-operands": "error",
  "@typescript-eslint/no-unsafe-assignment": "error",
  "@typescript-eslint/no-unsafe-argument": "error",
  "@typescript-eslint/no-unsafe-call": "error",
  "@typescript-eslint/no-unsafe-member-access": "error",
  "@typescript-eslint/no-unsafe-return": "error",
};

export default defineConfig(
  { ignores: ["dist/", "coverage/", "scratch/", "node_modules/", "vitest.config.ts"] },
  { linterOptions: { reportUnusedDisableDirectives: "error" } },
  {
    files: ["**/*.js", "**/*.mjs"],
    rules: everywhere,
  },
  {
    files: ["**/*.ts"],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { "@typescript-eslint": tseslint.plugin },
    rules: typescript,
  },
  {
    files: ["src/**/*.ts", "node/**/*.ts", "protocols/**/*.ts", "identity/**/*.ts", "bench/**/*.ts"],
    rules: library,
  },
  {
    // A library writes through the logger or the caller's streams; the CLI and the benchmarks own a terminal.
    files: ["src/**/*.ts", "node/**/*.ts", "protocols/**/*.ts", "identity/**/*.ts"],
    ignores: ["node/cli/**"],
    rules: { "no-console": "error" },
  },
);

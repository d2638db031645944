// ESLint flat config: ESLint's and typescript-eslint's recommended rules (syntax-only, no
// type information, so it stays fast) over src/, test/, bench/ and scripts/. `npm run lint`
// runs it, then `tsc --noEmit` for the type checks.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'vendor/', 'data/', 'certs/', 'bench/results/', 'coverage/', '.tap/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    linterOptions: { reportUnusedDisableDirectives: 'error' },
  },
  {
    files: ['**/*.ts'],
    rules: {
      // tsc (noUnusedLocals/noUnusedParameters) already reports these, with `_` as the escape.
      '@typescript-eslint/no-unused-vars': 'off',
      // `let x; on(event, () => x?.()); x = start()`: a handler registered before the value exists.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // `const self = this` for async generators, which cannot be arrow functions.
      '@typescript-eslint/no-this-alias': ['error', { allowedNames: ['self'] }],
      // Flags initializers such as `let alive = false` before a try whose catch also assigns:
      // the explicit default reads better than an unassigned let.
      'no-useless-assignment': 'off',
      // Terminal and log output strips control characters from untrusted text on purpose.
      'no-control-regex': 'off',
    },
  },
  {
    // Plain Node scripts that run before dependencies exist (scripts/setup.js).
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: globals.node },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);

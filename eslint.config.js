// ESLint flat config (eslint 10, typescript-eslint 8). `npm run lint` runs it over the tree.
//
// TypeScript files get the recommended rules plus a few type-aware ones that guard what this
// library promises: no forgotten promise (a dropped deduct is a silent bug), no rejection or
// throw with a non-Error (DESIGN.md section 5), type-only imports kept type-only.
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig([
  globalIgnores(['dist/', 'node_modules/', '.tmp/', 'coverage/', '.stryker-tmp/', 'reports/']),
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/only-throw-error': 'error',
      '@typescript-eslint/prefer-promise-reject-errors': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      eqeqeq: ['error', 'always'],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    extends: [tseslint.configs.disableTypeChecked],
  },
  {
    // The live page's script runs in the browser.
    files: ['examples/flash-sale-service/public/**/*.js'],
    languageOptions: { globals: { document: 'readonly', requestAnimationFrame: 'readonly', EventSource: 'readonly' } },
  },
]);

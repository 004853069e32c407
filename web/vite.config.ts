import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';
import tailwindcss from '@tailwindcss/vite';

// `npm run dev` proxies the API and the live socket to a locally running
// StudyOn server (default http://127.0.0.1:8080, override with
// STUDYON_DEV_SERVER). Production builds go to dist/, which the server
// serves itself with `--web-dir`.
const devServer = process.env.STUDYON_DEV_SERVER ?? 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [preact(), tailwindcss()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
  },
  server: {
    host: '127.0.0.1',
    proxy: {
      '/api': { target: devServer, changeOrigin: false },
      '/ws': { target: devServer, ws: true, changeOrigin: false },
      '/readyz': { target: devServer },
    },
  },
});

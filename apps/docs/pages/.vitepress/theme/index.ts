import { defineAsyncComponent } from "vue";
import DefaultTheme from "vitepress/theme";
import type { Theme } from "vitepress";
import "./style.css";

export default {
  extends: DefaultTheme,
  enhanceApp({ app }) {
    // The playground pulls in the whole library and CodeMirror: load it only on its page.
    app.component("Playground", defineAsyncComponent(() => import("./Playground.vue")));
    app.component("MaskTry", defineAsyncComponent(() => import("./MaskTry.vue")));
  },
} satisfies Theme;

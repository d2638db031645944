/** What every dashboard view gets and gives back. */
import type { Me } from './types.js';

export interface ViewContext {
  me: Me;
  /** Shows a line in the status bar (errors in red). */
  status(message: string, error?: boolean): void;
  /** Navigates to a dashboard route (the part after `#`). */
  go(route: string): void;
}

export interface View {
  /** The view's root element, mounted by the app. */
  el: HTMLElement;
  /** Fetches and redraws the live parts; called at once and then on every poll. Throwing an ApiError 403/404 shows an error page. */
  refresh(): Promise<void>;
  /** Stops anything the view started (chart resize listeners...). */
  dispose?(): void;
}

export type ViewFactory = (ctx: ViewContext, params: string[]) => View;

# One image for the three HTTP services (gateway, read API, ack service); the
# ECS task's command picks the entry file. The services run TypeScript through
# tsx, a runtime dependency, so there is no separate build stage.
FROM node:22-slim
ENV NODE_ENV=production
# In a container the services must listen on every interface (the load balancer's health checks
# come from outside); the services' own default stays loopback for laptop runs.
ENV HOST=0.0.0.0
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no runtime dependency needs an install script (tsx's esbuild
# binary arrives as an optional platform package).
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY . .
USER node
EXPOSE 3000 3001 3002
CMD ["node", "--import", "tsx", "gateway/main.ts"]
